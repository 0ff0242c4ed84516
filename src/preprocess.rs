//! Turning BGR images into model input tensors, following each model's manifest convention
//! (channel order, mean, std). One definition shared by every model and, later, by the GPU
//! kernels' CPU twins.

use crate::image::{resize_bilinear_scaled, BgrImage};
use crate::models::{ChannelOrder, InputSpec};

/// Writes `img` into one NCHW plane set of a `canvas_w`×`canvas_h` tensor. Canvas pixels outside
/// the image are padding with raw value 0 (then normalised like any pixel, as the reference
/// implementations pad the raw image with zeros before normalising).
pub fn fill_nchw(
    img: &BgrImage,
    spec: &InputSpec,
    canvas_w: usize,
    canvas_h: usize,
    out: &mut [f32],
) {
    debug_assert_eq!(out.len(), 3 * canvas_w * canvas_h);
    let plane = canvas_w * canvas_h;
    // Source BGR byte index for each output channel.
    let src_channel = match spec.channel_order {
        ChannelOrder::Bgr => [0, 1, 2],
        ChannelOrder::Rgb => [2, 1, 0],
    };
    for c in 0..3 {
        let scale = 1.0 / spec.std[c];
        let pad = (0.0 - spec.mean[c]) * scale;
        let dst = &mut out[c * plane..(c + 1) * plane];
        dst.fill(pad);
        let sc = src_channel[c];
        for y in 0..img.height.min(canvas_h) {
            let row = &img.data[y * img.width * 3..(y + 1) * img.width * 3];
            let drow = &mut dst[y * canvas_w..y * canvas_w + img.width.min(canvas_w)];
            for (x, d) in drow.iter_mut().enumerate() {
                *d = (row[x * 3 + sc] as f32 - spec.mean[c]) * scale;
            }
        }
    }
}

/// A frame resized for a detector: the longer side becomes `max_side` (`r = max_side / max(w, h)`,
/// sizes rounded to nearest, sampling step `1/r` as OpenCV's `resize(fx=r, fy=r)`).
pub struct Resized {
    pub image: BgrImage,
    /// Detector-input pixels per frame pixel.
    pub scale: f64,
}

pub fn resize_longer_side(frame: &BgrImage, max_side: usize) -> Resized {
    let g = crate::gpu::params::Resize::longer_side(frame.width, frame.height, max_side);
    let image = if g.dst_w as usize == frame.width && g.dst_h as usize == frame.height {
        frame.clone()
    } else {
        resize_bilinear_scaled(
            frame,
            g.dst_w as usize,
            g.dst_h as usize,
            g.step_x,
            g.step_y,
        )
    };
    Resized {
        image,
        scale: longer_side_scale(frame.width, frame.height, max_side),
    }
}

/// Detector-input pixels per frame pixel when the longer side of a `width`×`height` frame becomes
/// `max_side`.
pub fn longer_side_scale(width: usize, height: usize, max_side: usize) -> f64 {
    max_side as f64 / width.max(height).max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ChannelOrder;

    fn spec(order: ChannelOrder) -> InputSpec {
        InputSpec {
            name: "x".into(),
            size: None,
            multiple: 1,
            channel_order: order,
            mean: [10.0, 20.0, 30.0],
            std: [1.0, 2.0, 4.0],
        }
    }

    #[test]
    fn channel_order_mean_std_and_padding() {
        let img = BgrImage::from_raw(1, 1, vec![100, 150, 200]).unwrap();
        let mut out = vec![0f32; 3 * 2];
        fill_nchw(&img, &spec(ChannelOrder::Bgr), 2, 1, &mut out);
        assert_eq!(out, vec![90.0, -10.0, 65.0, -10.0, 42.5, -7.5]);
        fill_nchw(&img, &spec(ChannelOrder::Rgb), 2, 1, &mut out);
        assert_eq!(out, vec![190.0, -10.0, 65.0, -10.0, 17.5, -7.5]);
    }

    #[test]
    fn longer_side_becomes_max_side() {
        let img = BgrImage::new(1280, 886);
        let r = resize_longer_side(&img, 640);
        assert_eq!((r.image.width, r.image.height), (640, 443));
        assert!((r.scale - 0.5).abs() < 1e-12);
    }
}
