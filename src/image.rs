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
/// images (byte for byte against opencv-python 4.10 on 60 random and 9 chosen sizes): the source
/// position of destination pixel `d` is `(d + 0.5) * step - 0.5`, the two weights per axis are
/// rounded to 1/2048 (11-bit fixed point; see `axis_taps` for the borders), the horizontal pass
/// is exact and the vertical pass is OpenCV's vector arithmetic (`vertical_blend`). `step_x`/`step_y` are source pixels per destination
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
    let xs = axis_taps(src.width, dst_width, step_x, true);
    let ys = axis_taps(src.height, dst_height, step_y, false);
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
        vertical_blend(&row0, &row1, t.w0, t.w1, out);
    }
    dst
}

/// OpenCV's vertical pass for 8-bit images, bit for bit (`VResizeLinearVec_32s8u`, which the
/// x86-64 builds of OpenCV apply to whole rows): the 4 low bits of the horizontal sums are dropped
/// and only the high half of each 16-bit product is kept before rounding. It differs from the
/// exact fixed-point blend by one grey level on about 9 % of the pixels of a 224→64 chip, which
/// moves the WideResNet's age by up to 0.3 years, so it is reproduced rather than improved on.
fn vertical_blend(row0: &[i32], row1: &[i32], w0: i32, w1: i32, out: &mut [u8]) {
    let narrow = |v: i32| (v >> 4).clamp(i16::MIN as i32, i16::MAX as i32);
    let mul_hi = |a: i32, b: i32| (a * b) >> 16;
    for ((o, a), b) in out.iter_mut().zip(row0).zip(row1) {
        let v = mul_hi(narrow(*a), w0) + mul_hi(narrow(*b), w1);
        *o = ((v + 2) >> 2).clamp(0, 255) as u8;
    }
}

struct Tap {
    i0: usize,
    i1: usize,
    w0: i32,
    w1: i32,
}

/// Source pixels and 11-bit weights for each destination pixel along one axis. OpenCV treats
/// the axes differently at the borders: along x a position before the first or past the last
/// pixel takes that pixel with full weight; along y the weights stay as computed and only the
/// row indices are clamped (so the top rows blend row 0 with itself). Weights round half to even
/// (`cvRound`).
fn axis_taps(src_len: usize, dst_len: usize, step: f64, clamp_weights: bool) -> Vec<Tap> {
    let last = src_len as i64 - 1;
    (0..dst_len)
        .map(|d| {
            let f = ((d as f64 + 0.5) * step - 0.5) as f32;
            let mut s = f.floor() as i64;
            let mut frac = f - s as f32;
            if clamp_weights && s < 0 {
                s = 0;
                frac = 0.0;
            }
            if clamp_weights && s >= last {
                s = last;
                frac = 0.0;
            }
            Tap {
                i0: s.clamp(0, last) as usize,
                i1: (s + 1).clamp(0, last) as usize,
                w0: ((1.0 - frac) * 2048.0).round_ties_even() as i32,
                w1: (frac * 2048.0).round_ties_even() as i32,
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

    /// A test pattern whose values do not line up with the fixed-point steps.
    fn pattern(w: usize, h: usize) -> BgrImage {
        let mut img = BgrImage::new(w, h);
        for y in 0..h {
            for x in 0..w {
                for c in 0..3 {
                    img.data[(y * w + x) * 3 + c] =
                        ((x * 37 + y * 101 + c * 53 + (x * y) % 7 * 11) % 256) as u8;
                }
            }
        }
        img
    }

    #[test]
    fn matches_opencv_byte_for_byte() {
        // Reference: cv2.resize(pattern, (w, h), interpolation=cv2.INTER_LINEAR), opencv-python
        // 4.10.0.84 on x86-64. The first case scales up vertically (top and bottom rows blend a
        // border row with itself), the second down on both axes.
        let up = [
            24, 78, 131, 111, 164, 217, 197, 165, 47, 61, 114, 167, 155, 123, 176, 165, 161, 101,
            121, 174, 227, 230, 56, 108, 112, 155, 189, 105, 158, 173, 191, 101, 155, 138, 153,
            130, 71, 124, 91, 123, 176, 229, 184, 151, 34, 83, 136, 151, 155, 207, 118, 182, 102,
            79, 105, 140, 193, 166, 219, 45, 177, 78, 131, 166, 105, 158, 99, 151, 119, 156, 153,
            206, 202, 84, 137, 58, 111, 164, 144, 197, 250,
        ];
        assert_eq!(pattern(7, 5).resize(3, 9).data, up);
        let down = [
            143, 196, 249, 115, 72, 125, 122, 175, 228, 206, 227, 56, 219, 48, 101, 61, 114, 167,
            149, 202, 159, 214, 43, 96, 227, 56, 77, 73, 126, 179, 175, 228, 25, 21, 74, 127,
        ];
        assert_eq!(pattern(11, 9).resize(4, 3).data, down);
    }

    #[test]
    fn the_vertical_pass_keeps_opencvs_vector_rounding() {
        // Horizontal sums 4099 and 7919 (scale 2048) with weights 1500 and 548. Exact:
        // (4099·1500 + 7919·548 + 2²¹) >> 22 = 3. OpenCV: 4099 >> 4 = 256, 256·1500 >> 16 = 5;
        // 7919 >> 4 = 494, 494·548 >> 16 = 4; (5 + 4 + 2) >> 2 = 2.
        let mut out = [0u8; 1];
        vertical_blend(&[4099], &[7919], 1500, 548, &mut out);
        assert_eq!(out, [2]);
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
