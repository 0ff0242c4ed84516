//! Decoded frames → BGR (swscale): the stream's colour matrix and range honoured, exact
//! rounding with full chroma interpolation, non-square pixels rescaled to display aspect. Only
//! sampled frames come here.

use ff::format::Pixel;
use ff::software::scaling;
use ffmpeg_next as ff;

use crate::image::BgrImage;

/// What a swscale context is set up for; a frame that differs gets a new one.
#[derive(PartialEq, Eq, Clone, Copy)]
struct ScalerKey {
    format: Pixel,
    width: u32,
    height: u32,
    out_width: u32,
    space: ff::color::Space,
    range: ff::color::Range,
}

/// A colour converter that keeps its swscale context while the frames' format stays the same.
#[derive(Default)]
pub struct Converter {
    scaler: Option<(ScalerKey, scaling::Context)>,
}

// SAFETY: the swscale context is owned exclusively and only used through `&mut self`.
unsafe impl Send for Converter {}

impl Converter {
    /// `f` (a frame in host memory) as BGR at display aspect; `stream_sar` stands in when the
    /// frame states no sample aspect ratio.
    pub fn to_bgr(
        &mut self,
        f: &ff::frame::Video,
        stream_sar: (i32, i32),
    ) -> Result<BgrImage, String> {
        let sar = frame_sar(f, stream_sar);
        let key = ScalerKey {
            format: f.format(),
            width: f.width(),
            height: f.height(),
            out_width: display_width(f.width(), sar),
            space: f.color_space(),
            range: f.color_range(),
        };
        if self.scaler.as_ref().map(|(k, _)| *k) != Some(key) {
            let ctx = scaling::Context::get(
                key.format,
                key.width,
                key.height,
                Pixel::BGR24,
                key.out_width,
                key.height,
                scaling::Flags::BILINEAR
                    | scaling::Flags::ACCURATE_RND
                    | scaling::Flags::FULL_CHR_H_INT,
            )
            .map_err(|e| format!("cannot convert pixel format {:?}: {e}", key.format))?;
            set_colorspace(&ctx, key.space, key.range);
            self.scaler = Some((key, ctx));
        }
        let (_, scaler) = self.scaler.as_mut().expect("set above");
        let mut out = ff::frame::Video::empty();
        scaler
            .run(f, &mut out)
            .map_err(|e| format!("colour conversion failed: {e}"))?;
        let (w, h) = (out.width() as usize, out.height() as usize);
        let stride = out.stride(0);
        let data = out.data(0);
        let mut img = BgrImage::new(w, h);
        for y in 0..h {
            img.data[y * w * 3..(y + 1) * w * 3]
                .copy_from_slice(&data[y * stride..y * stride + w * 3]);
        }
        Ok(img)
    }
}

/// A frame's sample aspect ratio, or the stream's (`stream_sar`) when the frame states none.
pub fn frame_sar(f: &ff::frame::Video, stream_sar: (i32, i32)) -> (i32, i32) {
    let sar = f.aspect_ratio();
    if sar.numerator() > 0 && sar.denominator() > 0 {
        (sar.numerator(), sar.denominator())
    } else {
        stream_sar
    }
}

/// Width at display aspect of a frame `coded_width` pixels wide with sample aspect ratio `sar`.
pub fn display_width(coded_width: u32, sar: (i32, i32)) -> u32 {
    if sar.0 == sar.1 {
        coded_width
    } else {
        ((coded_width as f64 * sar.0 as f64 / sar.1 as f64).round() as u32).max(1)
    }
}
/// Tells swscale the source's YUV matrix and range (it assumes BT.601 limited range otherwise);
/// output is full-range BGR.
fn set_colorspace(ctx: &scaling::Context, space: ff::color::Space, range: ff::color::Range) {
    use ff::ffi::*;
    let cs = match space {
        ff::color::Space::BT709 => SWS_CS_ITU709,
        ff::color::Space::FCC => SWS_CS_FCC,
        ff::color::Space::SMPTE240M => SWS_CS_SMPTE240M,
        ff::color::Space::BT2020NCL | ff::color::Space::BT2020CL => SWS_CS_BT2020,
        _ => SWS_CS_ITU601,
    };
    let src_full = (range == ff::color::Range::JPEG) as i32;
    // SAFETY: the context pointer is valid for the lifetime of `ctx`; the coefficient tables are
    // static arrays owned by libswscale.
    unsafe {
        let ptr = ctx.as_ptr() as *mut SwsContext;
        let src = sws_getCoefficients(cs);
        let dst = sws_getCoefficients(SWS_CS_DEFAULT);
        sws_setColorspaceDetails(ptr, src, src_full, dst, 1, 0, 1 << 16, 1 << 16);
    }
}
