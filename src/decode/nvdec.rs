//! NVDEC through FFmpeg's CUDA hardware decoding: the decoder writes every frame it is given (the
//! packets `gop_skip` lets through, as on the CPU) into GPU memory,
//! in the GPU's primary context (the one cudarc and ONNX Runtime use), so the decoding work leaves
//! the CPU. Only sampled frames are copied back to the host for the CPU stages (at one sample per
//! second of 25 fps, 4 % of the frames).
//!
//! A stream NVDEC cannot take falls back to FFmpeg's software decoder: when the GPU, its driver or
//! FFmpeg's support for the codec is missing, the whole file decodes on the CPU (`attach` says
//! why, once); when NVDEC declines a stream's format (4:2:2, 4:4:4, some 10-bit profiles), FFmpeg
//! itself offers the software format and `pick_format` takes it. Either way the frames and their
//! sampling are the same; the summary records which decoder ran.

use ffmpeg_next as ff;

use ff::ffi::{AVCodecContext, AVHWDeviceType, AVPixelFormat};

use crate::gpu::params::{Matrix, Nv12Layout, YuvToBgr};

/// `AV_CUDA_USE_PRIMARY_CONTEXT` (libavutil/hwcontext_cuda.h): the device context retains the
/// GPU's primary context instead of creating its own.
const USE_PRIMARY_CONTEXT: i32 = 1;

/// Sets up CUDA decoding of GPU `device` on an unopened decoder context, or says why it cannot
/// (the caller then decodes on the CPU). Returns whether FFmpeg shares the GPU's primary context
/// (only then can its frames be handed to our kernels and ONNX Runtime where they are).
pub fn attach(ctx: &mut ff::codec::context::Context, device: usize) -> Result<bool, String> {
    crate::gpu::ensure_driver().map_err(|e| e.to_string())?;
    if !nvcuvid_present() {
        return Err("libnvcuvid.so.1 (NVDEC) is missing: install the driver's decode library (in containers: NVIDIA_DRIVER_CAPABILITIES must include video)".into());
    }
    // SAFETY: the context is valid and not yet opened; the codec pointer is FFmpeg's static
    // description; `hw_device_ctx` takes a reference we own, and `get_format` is a plain
    // callback pointer FFmpeg calls from its decoding threads.
    unsafe {
        let raw = ctx.as_mut_ptr();
        let codec = ff::ffi::avcodec_find_decoder((*raw).codec_id);
        if codec.is_null() || !supports_cuda(codec) {
            return Err(format!(
                "FFmpeg has no NVDEC decoding for {:?}",
                (*raw).codec_id
            ));
        }
        if let Some(why) = unsupported_format((*raw).codec_id, (*raw).pix_fmt) {
            return Err(why);
        }
        let ordinal = std::ffi::CString::new(device.to_string()).expect("digits");
        let create = |flags: i32| {
            let mut device_ref = std::ptr::null_mut();
            let status = ff::ffi::av_hwdevice_ctx_create(
                &mut device_ref,
                AVHWDeviceType::AV_HWDEVICE_TYPE_CUDA,
                ordinal.as_ptr(),
                std::ptr::null_mut(),
                flags,
            );
            (status, device_ref)
        };
        // FFmpeg takes the primary context only with the scheduling flag it wants; ONNX Runtime
        // and cudarc may have activated it already with another, so set it first (allowed on an
        // active context since CUDA 11). Failing that, FFmpeg decodes in a context of its own,
        // and sampled frames are copied to the host (another context's memory is not ours).
        prepare_primary_context(device);
        let (mut status, mut device_ref) = create(USE_PRIMARY_CONTEXT);
        let primary = status >= 0;
        if !primary {
            (status, device_ref) = create(0);
        }
        if status < 0 || device_ref.is_null() {
            return Err(format!(
                "FFmpeg cannot open CUDA device {device} for decoding: {}",
                ff::Error::from(status)
            ));
        }
        (*raw).hw_device_ctx = device_ref;
        (*raw).get_format = Some(pick_format);
        Ok(primary)
    }
}

fn nvcuvid_present() -> bool {
    // SAFETY: loads and unloads a library by name; nothing is called.
    unsafe {
        let handle = libc::dlopen(c"libnvcuvid.so.1".as_ptr(), libc::RTLD_NOW);
        if handle.is_null() {
            return false;
        }
        libc::dlclose(handle);
    }
    true
}

/// Pixel formats FFmpeg 5.1's NVDEC does not decode for these codecs (they would silently fall
/// back to a single-threaded software decoder inside FFmpeg): decided before opening instead.
fn unsupported_format(codec: ff::ffi::AVCodecID, format: AVPixelFormat) -> Option<String> {
    use ff::ffi::AVCodecID::*;
    use AVPixelFormat::*;
    let supported: &[AVPixelFormat] = match codec {
        AV_CODEC_ID_H264 => &[AV_PIX_FMT_YUV420P, AV_PIX_FMT_YUVJ420P],
        AV_CODEC_ID_HEVC => &[
            AV_PIX_FMT_YUV420P,
            AV_PIX_FMT_YUVJ420P,
            AV_PIX_FMT_YUV420P10LE,
            AV_PIX_FMT_YUV420P12LE,
            AV_PIX_FMT_YUV444P,
            AV_PIX_FMT_YUV444P10LE,
            AV_PIX_FMT_YUV444P12LE,
        ],
        _ => return None,
    };
    (format != AV_PIX_FMT_NONE && !supported.contains(&format))
        .then(|| format!("NVDEC does not decode {codec:?} in {format:?}"))
}

/// Gives GPU `device`'s primary context the blocking-sync scheduling FFmpeg requires to share it
/// (best effort: FFmpeg falls back to its own context otherwise).
fn prepare_primary_context(device: usize) {
    use cudarc::driver::sys;
    let wanted = sys::CUctx_flags::CU_CTX_SCHED_BLOCKING_SYNC as u32;
    let _ = crate::gpu::guarded(|| {
        // SAFETY: plain driver calls on a device handle they fill in themselves.
        unsafe {
            let mut dev = 0;
            let (mut flags, mut active) = (0u32, 0i32);
            let ok = sys::cuInit(0) == sys::CUresult::CUDA_SUCCESS
                && sys::cuDeviceGet(&mut dev, device as i32) == sys::CUresult::CUDA_SUCCESS
                && sys::cuDevicePrimaryCtxGetState(dev, &mut flags, &mut active)
                    == sys::CUresult::CUDA_SUCCESS;
            if ok && flags != wanted {
                let _ = sys::cuDevicePrimaryCtxSetFlags_v2(dev, wanted);
            }
        }
        Ok(())
    });
}

/// Whether FFmpeg can decode this codec into CUDA frames from a device context.
///
/// # Safety
/// `codec` must be one of FFmpeg's codec descriptions.
unsafe fn supports_cuda(codec: *const ff::ffi::AVCodec) -> bool {
    let method = ff::ffi::AV_CODEC_HW_CONFIG_METHOD_HW_DEVICE_CTX as i32;
    (0..)
        .map(|i| ff::ffi::avcodec_get_hw_config(codec, i))
        .take_while(|c| !c.is_null())
        .any(|c| {
            (*c).device_type == AVHWDeviceType::AV_HWDEVICE_TYPE_CUDA
                && (*c).methods & method != 0
                && (*c).pix_fmt == AVPixelFormat::AV_PIX_FMT_CUDA
        })
}

/// FFmpeg's format negotiation: CUDA frames when offered, else the software format FFmpeg
/// prefers (NVDEC declined this stream's format).
unsafe extern "C" fn pick_format(
    ctx: *mut AVCodecContext,
    formats: *const AVPixelFormat,
) -> AVPixelFormat {
    let mut p = formats;
    while *p != AVPixelFormat::AV_PIX_FMT_NONE {
        if *p == AVPixelFormat::AV_PIX_FMT_CUDA {
            return *p;
        }
        p = p.add(1);
    }
    ff::ffi::avcodec_default_get_format(ctx, formats)
}

/// Whether a decoded frame lives in GPU memory.
pub fn on_gpu(frame: &ff::frame::Video) -> bool {
    frame.format() == ff::format::Pixel::CUDA
}

/// The conversion of a frame's colour matrix and range to BGR, where the kernels know the matrix
/// (BT.709, BT.601; unspecified is BT.601, as swscale assumes on the CPU path); `None` otherwise.
pub fn colour_of(space: ff::color::Space, range: ff::color::Range) -> Option<YuvToBgr> {
    use ff::color::Space;
    let matrix = match space {
        Space::BT709 => Matrix::Bt709,
        Space::BT470BG | Space::SMPTE170M | Space::Unspecified => Matrix::Bt601,
        _ => return None,
    };
    Some(YuvToBgr::new(matrix, range == ff::color::Range::JPEG))
}

/// Where a decoded frame's NV12 picture is in GPU memory (device addresses of its luma and
/// chroma planes) and how it is laid out, when the GPU path can take it as it is: 8-bit 4:2:0,
/// upright, square pixels, progressive, a colour matrix the kernels know; else why not (the
/// frame is then copied to the host and converted there). `rotation` and `sar` are the stream's.
pub fn nv12_surface(
    frame: &ff::frame::Video,
    rotation: u32,
    sar: (i32, i32),
) -> Result<((u64, u64), Nv12Layout), &'static str> {
    if !on_gpu(frame) {
        return Err("decoded on the CPU");
    }
    // SAFETY: a CUDA frame carries its frames context; `data` of that reference is an
    // AVHWFramesContext.
    let software = unsafe {
        let ctx = (*frame.as_ptr()).hw_frames_ctx;
        if ctx.is_null() {
            return Err("no hardware frames context");
        }
        (*((*ctx).data as *const ff::ffi::AVHWFramesContext)).sw_format
    };
    let sar = super::convert::frame_sar(frame, sar);
    let colour = colour_of(frame.color_space(), frame.color_range());
    let pitch = frame.stride(0);
    let colour = if software != AVPixelFormat::AV_PIX_FMT_NV12 {
        Err("not 8-bit 4:2:0")
    } else if rotation != 0 {
        Err("rotated")
    } else if super::convert::display_width(frame.width(), sar) != frame.width() {
        Err("non-square pixels")
    } else if frame.is_interlaced() {
        Err("interlaced")
    } else if frame.stride(1) != pitch {
        Err("planes of different pitch")
    } else {
        colour.ok_or("colour matrix")
    }?;
    // SAFETY: a CUDA frame's data pointers are device addresses.
    let planes = unsafe {
        let f = frame.as_ptr();
        ((*f).data[0] as u64, (*f).data[1] as u64)
    };
    let layout = Nv12Layout {
        width: frame.width() as usize,
        height: frame.height() as usize,
        pitch,
        colour,
    };
    Ok((planes, layout))
}

/// A GPU frame copied to the host (NV12, or P010 for 10-bit), with its timestamps and colour
/// properties.
pub fn download(frame: &ff::frame::Video) -> Result<ff::frame::Video, String> {
    let mut host = ff::frame::Video::empty();
    // SAFETY: both frames are valid; the destination is empty, so FFmpeg allocates it in the
    // frames context's software format.
    unsafe {
        let status = ff::ffi::av_hwframe_transfer_data(host.as_mut_ptr(), frame.as_ptr(), 0);
        if status < 0 {
            return Err(format!(
                "copying a decoded frame from the GPU failed: {}",
                ff::Error::from(status)
            ));
        }
        let status = ff::ffi::av_frame_copy_props(host.as_mut_ptr(), frame.as_ptr());
        if status < 0 {
            return Err(format!(
                "copying a decoded frame's properties failed: {}",
                ff::Error::from(status)
            ));
        }
    }
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_nvdec_cannot_decode_go_to_the_cpu_before_opening() {
        use ff::ffi::AVCodecID::*;
        use AVPixelFormat::*;
        // 4:2:2 and 10-bit H.264 (broadcast contribution formats) are not NVDEC's.
        assert!(unsupported_format(AV_CODEC_ID_H264, AV_PIX_FMT_YUV422P).is_some());
        assert!(unsupported_format(AV_CODEC_ID_H264, AV_PIX_FMT_YUV420P10LE).is_some());
        assert!(unsupported_format(AV_CODEC_ID_HEVC, AV_PIX_FMT_YUV422P10LE).is_some());
        for (codec, format) in [
            (AV_CODEC_ID_H264, AV_PIX_FMT_YUV420P),
            (AV_CODEC_ID_H264, AV_PIX_FMT_YUVJ420P),
            (AV_CODEC_ID_HEVC, AV_PIX_FMT_YUV420P10LE),
            (AV_CODEC_ID_HEVC, AV_PIX_FMT_YUV444P),
            // Not yet known (no parameters): left to FFmpeg's negotiation.
            (AV_CODEC_ID_H264, AV_PIX_FMT_NONE),
            (AV_CODEC_ID_VP9, AV_PIX_FMT_YUV420P10LE),
        ] {
            assert_eq!(
                unsupported_format(codec, format),
                None,
                "{codec:?} {format:?}"
            );
        }
    }

    #[test]
    fn the_formats_nvdec_decodes_are_known_to_this_ffmpeg() {
        super::super::ffmpeg::init();
        for id in [ff::codec::Id::H264, ff::codec::Id::HEVC] {
            let codec = ff::decoder::find(id).expect("FFmpeg has the decoder");
            // SAFETY: FFmpeg's static codec description.
            assert!(
                unsafe { supports_cuda(codec.as_ptr()) },
                "Debian's FFmpeg builds NVDEC for {id:?}"
            );
        }
    }
}
