//! The affine warp that cuts a face chip out of a frame: bilinear, black outside the frame, the same
//! arithmetic as OpenCV's `warpAffine(src, M, size)` with default flags (INTER_LINEAR,
//! BORDER_CONSTANT 0):
//!
//! - `M` maps frame → chip; each chip pixel samples the frame at `M⁻¹·(x, y)`;
//! - that source position is computed in 10-bit fixed point and rounded to 1/32 pixel;
//! - the four neighbours are blended with weights in 1/32 steps (exact in OpenCV's 15-bit
//!   fixed point), neighbours outside the frame count as 0, and the sum is rounded to nearest.

use super::similarity::{invert, Affine};
use crate::image::BgrImage;

const INTER_BITS: i64 = 5;
const INTER_TAB: i64 = 1 << INTER_BITS;
const AB_BITS: i64 = 10;
const AB_SCALE: f64 = (1 << AB_BITS) as f64;

pub fn warp_affine(
    src: &BgrImage,
    frame_to_chip: &Affine,
    width: usize,
    height: usize,
) -> BgrImage {
    let m = invert(frame_to_chip);
    let mut dst = BgrImage::new(width, height);
    let (sw, sh) = (src.width as i64, src.height as i64);
    let round_delta = (AB_SCALE / INTER_TAB as f64 / 2.0) as i64;
    let px = |x: i64, y: i64, c: usize| -> i64 {
        if x < 0 || y < 0 || x >= sw || y >= sh {
            0
        } else {
            src.data[((y * sw + x) * 3) as usize + c] as i64
        }
    };
    for y in 0..height {
        let x0 = ((m[1] * y as f64 + m[2]) * AB_SCALE).round_ties_even() as i64 + round_delta;
        let y0 = ((m[4] * y as f64 + m[5]) * AB_SCALE).round_ties_even() as i64 + round_delta;
        for x in 0..width {
            let adx = (m[0] * x as f64 * AB_SCALE).round_ties_even() as i64;
            let ady = (m[3] * x as f64 * AB_SCALE).round_ties_even() as i64;
            let xs = (x0 + adx) >> (AB_BITS - INTER_BITS);
            let ys = (y0 + ady) >> (AB_BITS - INTER_BITS);
            let (ix, fx) = (xs >> INTER_BITS, xs & (INTER_TAB - 1));
            let (iy, fy) = (ys >> INTER_BITS, ys & (INTER_TAB - 1));
            let w00 = (INTER_TAB - fx) * (INTER_TAB - fy) * 32;
            let w01 = fx * (INTER_TAB - fy) * 32;
            let w10 = (INTER_TAB - fx) * fy * 32;
            let w11 = fx * fy * 32;
            let o = (y * width + x) * 3;
            for c in 0..3 {
                let v = px(ix, iy, c) * w00
                    + px(ix + 1, iy, c) * w01
                    + px(ix, iy + 1, c) * w10
                    + px(ix + 1, iy + 1, c) * w11;
                dst.data[o + c] = ((v + (1 << 14)) >> 15).clamp(0, 255) as u8;
            }
        }
    }
    dst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_copies_and_blackens_outside() {
        let mut src = BgrImage::new(4, 3);
        for (i, b) in src.data.iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        let out = warp_affine(&src, &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0], 6, 4);
        for y in 0..4 {
            for x in 0..6 {
                let expected = if x < 4 && y < 3 {
                    src.pixel(x, y)
                } else {
                    [0, 0, 0]
                };
                // The last column/row inside blends with the black border only at fractional
                // positions; identity samples integer positions, so they are exact.
                assert_eq!(out.pixel(x, y), expected, "at {x},{y}");
            }
        }
    }

    #[test]
    fn half_pixel_shift_averages_neighbours() {
        let src = BgrImage::from_raw(2, 1, vec![0, 0, 0, 100, 100, 100]).unwrap();
        // chip x = frame x - 0.5 → chip pixel 0 samples frame x = 0.5
        let out = warp_affine(&src, &[1.0, 0.0, -0.5, 0.0, 1.0, 0.0], 1, 1);
        assert_eq!(out.pixel(0, 0), [50, 50, 50]);
    }
}
