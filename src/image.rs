//! Packed 8-bit BGR images (OpenCV's layout, which every model convention here is stated in) and the
//! one resampling rule shared by the detector input and the classifier input.

use std::path::Path;

use crate::error::{Error, Result};

/// A packed, row-major BGR image with 3 bytes per pixel and no row padding.
#[derive(Clone, PartialEq, Eq)]
pub struct BgrImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for BgrImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BgrImage({}x{})", self.width, self.height)
    }
}

impl BgrImage {
    pub fn new(width: usize, height: usize) -> Self {
        BgrImage {
            width,
            height,
            data: vec![0; width * height * 3],
        }
    }

    pub fn from_raw(width: usize, height: usize, data: Vec<u8>) -> Result<Self> {
        if data.len() != width * height * 3 {
            return Err(Error::Invalid(format!(
                "BGR buffer of {} bytes does not match {width}x{height}",
                data.len()
            )));
        }
        Ok(BgrImage {
            width,
            height,
            data,
        })
    }

    /// Builds a BGR image from packed RGB bytes.
    pub fn from_rgb(width: usize, height: usize, rgb: &[u8]) -> Result<Self> {
        let mut img = BgrImage::from_raw(width, height, rgb.to_vec())?;
        img.swap_red_blue();
        Ok(img)
    }

    #[inline]
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    pub fn swap_red_blue(&mut self) {
        for px in self.data.chunks_exact_mut(3) {
            px.swap(0, 2);
        }
    }

    pub fn to_rgb_bytes(&self) -> Vec<u8> {
        let mut rgb = self.clone();
        rgb.swap_red_blue();
        rgb.data
    }

    /// Mirror image (left-right).
    pub fn flip_horizontal(&self) -> BgrImage {
        let mut out = BgrImage::new(self.width, self.height);
        for y in 0..self.height {
            for x in 0..self.width {
                let s = (y * self.width + x) * 3;
                let d = (y * self.width + (self.width - 1 - x)) * 3;
                out.data[d..d + 3].copy_from_slice(&self.data[s..s + 3]);
            }
        }
        out
    }

    /// Reads a still image (JPEG, PNG, WebP, BMP, TIFF), applying the EXIF orientation so the
    /// picture is upright as a viewer shows it.
    pub fn load(path: &Path) -> Result<BgrImage> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::decode(&bytes, path)
    }

    pub fn decode(bytes: &[u8], path: &Path) -> Result<BgrImage> {
        use image::ImageDecoder;
        let err = |e: image::ImageError| Error::Image {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let mut decoder = image::ImageReader::new(std::io::Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| Error::io(path, e))?
            .into_decoder()
            .map_err(err)?;
        let orientation = decoder.orientation().map_err(err)?;
        let mut dynamic = image::DynamicImage::from_decoder(decoder).map_err(err)?;
        dynamic.apply_orientation(orientation);
        let rgb = dynamic.to_rgb8();
        let (w, h) = rgb.dimensions();
        BgrImage::from_rgb(w as usize, h as usize, rgb.as_raw())
    }

    /// Encodes as JPEG at the given quality (the chips use 95, as OpenCV's `imwrite` default).
    pub fn encode_jpeg(&self, quality: u8) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.width * self.height / 2);
        let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
        image::ImageEncoder::write_image(
            enc,
            &self.to_rgb_bytes(),
            self.width as u32,
            self.height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| Error::Invalid(format!("JPEG encoding failed: {e}")))?;
        Ok(out)
    }

    /// Bilinear resize with OpenCV `INTER_LINEAR` semantics (see [`resize_bilinear_scaled`]) to an
    /// explicit size; the sampling step is `src / dst` on each axis.
    pub fn resize(&self, dst_width: usize, dst_height: usize) -> BgrImage {
        let sx = self.width as f64 / dst_width as f64;
        let sy = self.height as f64 / dst_height as f64;
        resize_bilinear_scaled(self, dst_width, dst_height, sx, sy)
    }
}

/// Bilinear resampling exactly as OpenCV's `cv::resize(..., INTER_LINEAR)` computes it for 8-bit
/// images: the source position of destination pixel `d` is `(d + 0.5) * step - 0.5`, clamped to the
/// image, and the two weights per axis are rounded to 1/2048 (11-bit fixed point) before the
/// integer blend, which is rounded to nearest. `step_x`/`step_y` are source pixels per destination
/// pixel (OpenCV's `1/fx` when a scale factor is given, `src/dst` when a size is given).
pub fn resize_bilinear_scaled(
    src: &BgrImage,
    dst_width: usize,
    dst_height: usize,
    step_x: f64,
    step_y: f64,
) -> BgrImage {
    let mut dst = BgrImage::new(dst_width, dst_height);
    if src.width == 0 || src.height == 0 || dst_width == 0 || dst_height == 0 {
        return dst;
    }
    let xs = axis_taps(src.width, dst_width, step_x);
    let ys = axis_taps(src.height, dst_height, step_y);
    let stride = src.width * 3;
    // Horizontal pass into i32 rows (scale 2048), then vertical pass (scale 2048²).
    let mut row0 = vec![0i32; dst_width * 3];
    let mut row1 = vec![0i32; dst_width * 3];
    let hpass = |y: usize, row: &mut [i32]| {
        let line = &src.data[y * stride..(y + 1) * stride];
        for (dx, t) in xs.iter().enumerate() {
            for c in 0..3 {
                row[dx * 3 + c] =
                    line[t.i0 * 3 + c] as i32 * t.w0 + line[t.i1 * 3 + c] as i32 * t.w1;
            }
        }
    };
    let mut cached: (usize, usize) = (usize::MAX, usize::MAX);
    for (dy, t) in ys.iter().enumerate() {
        if cached != (t.i0, t.i1) {
            hpass(t.i0, &mut row0);
            hpass(t.i1, &mut row1);
            cached = (t.i0, t.i1);
        }
        let out = &mut dst.data[dy * dst_width * 3..(dy + 1) * dst_width * 3];
        for i in 0..dst_width * 3 {
            let v = (row0[i] as i64 * t.w0 as i64 + row1[i] as i64 * t.w1 as i64 + (1 << 21)) >> 22;
            out[i] = v.clamp(0, 255) as u8;
        }
    }
    dst
}

struct Tap {
    i0: usize,
    i1: usize,
    w0: i32,
    w1: i32,
}

fn axis_taps(src_len: usize, dst_len: usize, step: f64) -> Vec<Tap> {
    (0..dst_len)
        .map(|d| {
            let f = ((d as f64 + 0.5) * step - 0.5) as f32;
            let mut s = f.floor() as i64;
            let mut frac = f - s as f32;
            if s < 0 {
                s = 0;
                frac = 0.0;
            }
            if s >= src_len as i64 - 1 {
                s = src_len as i64 - 1;
                frac = 0.0;
            }
            let s = s as usize;
            Tap {
                i0: s,
                i1: (s + 1).min(src_len - 1),
                w0: ((1.0 - frac) * 2048.0).round() as i32,
                w1: (frac * 2048.0).round() as i32,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: usize, h: usize) -> BgrImage {
        let mut img = BgrImage::new(w, h);
        for y in 0..h {
            for x in 0..w {
                let i = (y * w + x) * 3;
                img.data[i] = (x * 7 % 256) as u8;
                img.data[i + 1] = (y * 5 % 256) as u8;
                img.data[i + 2] = ((x + y) * 3 % 256) as u8;
            }
        }
        img
    }

    #[test]
    fn identity_resize_is_exact() {
        let img = gradient(37, 19);
        assert_eq!(img.resize(37, 19), img);
    }

    #[test]
    fn halving_averages_pixel_pairs() {
        // 2:1 downscale samples at 2d + 0.5: the mean of each pixel pair, rounded.
        let img =
            BgrImage::from_raw(4, 1, vec![0, 0, 0, 10, 10, 10, 20, 20, 20, 31, 31, 31]).unwrap();
        let out = img.resize(2, 1);
        assert_eq!(out.data, vec![5, 5, 5, 26, 26, 26]);
    }

    #[test]
    fn upscale_edges_clamp_to_border() {
        let img = BgrImage::from_raw(2, 1, vec![0, 0, 0, 100, 100, 100]).unwrap();
        let out = img.resize(4, 1);
        // positions -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1)
        assert_eq!(out.pixel(0, 0), [0, 0, 0]);
        assert_eq!(out.pixel(1, 0), [25, 25, 25]);
        assert_eq!(out.pixel(2, 0), [75, 75, 75]);
        assert_eq!(out.pixel(3, 0), [100, 100, 100]);
    }

    #[test]
    fn flip_twice_is_identity() {
        let img = gradient(13, 7);
        assert_eq!(img.flip_horizontal().flip_horizontal(), img);
    }
}

impl BgrImage {
    /// Rotates clockwise by 0, 90, 180 or 270 degrees.
    pub fn rotate_clockwise(self, degrees: u32) -> BgrImage {
        let (w, h) = (self.width, self.height);
        let map: Box<dyn Fn(usize, usize) -> (usize, usize)> = match degrees % 360 {
            90 => Box::new(move |x, y| (h - 1 - y, x)),
            180 => Box::new(move |x, y| (w - 1 - x, h - 1 - y)),
            270 => Box::new(move |x, y| (y, w - 1 - x)),
            _ => return self,
        };
        let (ow, oh) = if degrees % 180 == 90 { (h, w) } else { (w, h) };
        let mut out = BgrImage::new(ow, oh);
        for y in 0..h {
            for x in 0..w {
                let (dx, dy) = map(x, y);
                let s = (y * w + x) * 3;
                let d = (dy * ow + dx) * 3;
                out.data[d..d + 3].copy_from_slice(&self.data[s..s + 3]);
            }
        }
        out
    }

    /// Deinterlaces by blending each line with its neighbours (1/4, 1/2, 1/4), which removes combing
    /// from still frames of interlaced broadcast video at the cost of some vertical sharpness.
    pub fn deinterlace_blend(&mut self) {
        if self.height < 3 {
            return;
        }
        let stride = self.width * 3;
        let src = self.data.clone();
        for y in 0..self.height {
            let up = &src[y.saturating_sub(1) * stride..][..stride];
            let mid = &src[y * stride..][..stride];
            let down = &src[(y + 1).min(self.height - 1) * stride..][..stride];
            let out = &mut self.data[y * stride..(y + 1) * stride];
            for i in 0..stride {
                out[i] = ((up[i] as u16 + 2 * mid[i] as u16 + down[i] as u16 + 2) / 4) as u8;
            }
        }
    }
}

#[cfg(test)]
mod rotate_tests {
    use super::BgrImage;

    #[test]
    fn rotations_compose() {
        let mut img = BgrImage::new(3, 2);
        for (i, b) in img.data.iter_mut().enumerate() {
            *b = i as u8;
        }
        let r90 = img.clone().rotate_clockwise(90);
        assert_eq!((r90.width, r90.height), (2, 3));
        // top-left of the rotated image is the bottom-left of the original
        assert_eq!(r90.pixel(0, 0), img.pixel(0, 1));
        assert_eq!(img.clone().rotate_clockwise(90).rotate_clockwise(270), img);
        assert_eq!(img.clone().rotate_clockwise(180).rotate_clockwise(180), img);
    }
}
