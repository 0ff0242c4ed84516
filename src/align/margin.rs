//! The crop the WideResNets were trained on (yu4u/age-gender-estimation): the detector's box
//! widened by 40 % of its width on the left and right and 40 % of its height above and below,
//! clipped to the frame, then resized to the model input *without* keeping the aspect ratio.
//!
//! Exactly as the training and demo code computes it, with the box as `x1, y1, x2, y2` and
//! `w = x2 - x1`, `h = y2 - y1`:
//! `left = max(trunc(x1 - 0.4·w), 0)`, `top = max(trunc(y1 - 0.4·h), 0)`,
//! `right = min(trunc(x2 + 0.4·w), W - 1)`, `bottom = min(trunc(y2 + 0.4·h), H - 1)`, and the
//! crop is the pixels from `left` to `right` and `top` to `bottom`, both inclusive (trunc rounds
//! toward zero, as Python's `int()`). The resize that follows is the classifier's own
//! (bilinear, OpenCV `INTER_LINEAR` semantics).

use crate::image::BgrImage;

pub const MARGIN: f32 = 0.4;

/// Inclusive pixel bounds `(left, top, right, bottom)` of the margin crop of `bbox` in a
/// `width`×`height` frame; at least one pixel.
pub fn margin_bounds(
    bbox: [f32; 4],
    width: usize,
    height: usize,
    margin: f32,
) -> (usize, usize, usize, usize) {
    let [x1, y1, x2, y2] = bbox;
    let (w, h) = (x2 - x1, y2 - y1);
    let trunc = |v: f32| v.trunc() as i64;
    let (wmax, hmax) = (width as i64 - 1, height as i64 - 1);
    let left = trunc(x1 - margin * w).clamp(0, wmax);
    let top = trunc(y1 - margin * h).clamp(0, hmax);
    let right = trunc(x2 + margin * w).clamp(left, wmax);
    let bottom = trunc(y2 + margin * h).clamp(top, hmax);
    (left as usize, top as usize, right as usize, bottom as usize)
}

/// The margin crop itself (not yet resized).
pub fn margin_crop(frame: &BgrImage, bbox: [f32; 4], margin: f32) -> BgrImage {
    let (l, t, r, b) = margin_bounds(bbox, frame.width, frame.height, margin);
    let (w, h) = (r - l + 1, b - t + 1);
    let mut out = BgrImage::new(w, h);
    for y in 0..h {
        let src = ((t + y) * frame.width + l) * 3;
        out.data[y * w * 3..(y + 1) * w * 3].copy_from_slice(&frame.data[src..src + w * 3]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values worked by hand from the formula in the module docs.

    #[test]
    fn box_inside_the_frame() {
        // w = 100, h = 120: left 200-40 = 160, top 100-48 = 52, right 300+40 = 340, bottom 220+48 = 268
        assert_eq!(
            margin_bounds([200.0, 100.0, 300.0, 220.0], 640, 360, 0.4),
            (160, 52, 340, 268)
        );
    }

    #[test]
    fn box_near_the_border_is_clipped() {
        // w = 50, h = 60: left 10-20 = -10 → 0, top 5-24 = -19 → 0, right 60+20 = 80, bottom 65+24 = 89
        assert_eq!(
            margin_bounds([10.0, 5.0, 60.0, 65.0], 640, 360, 0.4),
            (0, 0, 80, 89)
        );
        // right/bottom edge: x2 + 0.4w = 630 + 20 → 639, y2 + 0.4h = 350 + 24 → 359
        assert_eq!(
            margin_bounds([580.0, 290.0, 630.0, 350.0], 640, 360, 0.4),
            (560, 266, 639, 359)
        );
    }

    #[test]
    fn box_larger_than_the_frame_gives_the_whole_frame() {
        assert_eq!(
            margin_bounds([-50.0, -20.0, 700.0, 400.0], 640, 360, 0.4),
            (0, 0, 639, 359)
        );
    }

    #[test]
    fn non_square_box_uses_width_and_height_separately_and_truncates() {
        // w = 30.5, h = 81.25: 100.7 - 12.2 = 88.5 → 88; 50.2 - 32.5 = 17.7 → 17;
        // 131.2 + 12.2 = 143.4 → 143; 131.45 + 32.5 = 163.95 → 163
        assert_eq!(
            margin_bounds([100.7, 50.2, 131.2, 131.45], 640, 360, 0.4),
            (88, 17, 143, 163)
        );
    }

    #[test]
    fn crop_copies_the_inclusive_rectangle() {
        let mut frame = BgrImage::new(8, 6);
        for (i, b) in frame.data.iter_mut().enumerate() {
            *b = i as u8;
        }
        // w = h = 2.5 → margin 1: bounds (1, 1, 5, 4) inclusive → 5×4 pixels
        let crop = margin_crop(&frame, [2.0, 2.0, 4.5, 3.5], 0.4);
        assert_eq!((crop.width, crop.height), (5, 4));
        assert_eq!(crop.pixel(0, 0), frame.pixel(1, 1));
        assert_eq!(crop.pixel(4, 3), frame.pixel(5, 4));
    }
}
