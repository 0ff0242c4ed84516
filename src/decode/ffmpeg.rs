//! FFmpeg decoding (ffmpeg-next against the system FFmpeg), software with frame threading or
//! NVDEC (`nvdec`). Packets reach the decoder through `gop_skip` (GOPs without a sample point are
//! passed over); only sampled frames are converted (`convert`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ffmpeg_next as ff;

use super::bitstream::RefSyntax;
use super::convert::{display_width, Converter};
use super::gop_skip::{GopSkipper, Packet, Step};
use super::key_skip::{KeyInfo, KeySkipper};
use super::sampler::{Sampler, Timeline};
use super::{
    DecodeOptions, DecodeStats, FrameImage, FrameSource, Nvdec, SampledFrame, Sampling,
    TimestampSource, VideoInfo,
};
use crate::error::{Error, FailureKind, Result};
use crate::gpu::frames::DevicePlane;
use crate::image::BgrImage;

/// Container formats without timestamps of their own (raw elementary streams).
const RAW_FORMATS: &[&str] = &[
    "h264",
    "hevc",
    "mpegvideo",
    "m4v",
    "h263",
    "rawvideo",
    "vc1",
    "av1",
    "obu",
    "ivf",
];

pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ff::init();
        ff::util::log::set_level(ff::util::log::Level::Fatal);
    });
}

/// Whether FFmpeg can open `path` as a file with a decodable video stream (content probing: the
/// file name plays no part), and if not, why.
pub fn probe_video(
    path: &Path,
    stall_timeout: Duration,
) -> std::result::Result<(), (FailureKind, String)> {
    init();
    let watchdog = Watchdog::new(stall_timeout);
    let not_video = |m: String| {
        (
            FailureKind::NotAVideo,
            format!("not a decodable video: {m}"),
        )
    };
    let (name, _keep_open) =
        ffmpeg_path(path).map_err(|e| (FailureKind::Unreadable, format!("cannot read: {e}")))?;
    let ictx =
        ff::format::input_with_interrupt(&name, move || watchdog.should_abort()).map_err(|e| {
            match e {
                ff::Error::Exit => (FailureKind::Stalled, "opening the file stalled".to_string()),
                e => open_failure(path, e),
            }
        })?;
    // Still-image "videos" (a JPEG or PNG opened by the image2 demuxer) are photos, not videos.
    let fmt = ictx.format().name().to_string();
    if fmt.contains("image2") || fmt.ends_with("_pipe") {
        return Err(not_video(format!(
            "a still image ({fmt}) with a video file name"
        )));
    }
    let stream = ictx.streams().best(ff::media::Type::Video).ok_or((
        FailureKind::NoVideoStream,
        "no video stream (audio only?)".to_string(),
    ))?;
    if ff::codec::decoder::find(stream.parameters().id()).is_none() {
        return Err(not_video(format!(
            "no decoder for codec {:?}",
            stream.parameters().id()
        )));
    }
    Ok(())
}

/// The path to hand to FFmpeg. ffmpeg-next only takes UTF-8 paths; any other file name is opened
/// here and passed as `/proc/self/fd/N` (the returned file keeps that descriptor open).
fn ffmpeg_path(path: &Path) -> std::io::Result<(String, Option<std::fs::File>)> {
    match path.to_str() {
        Some(s) => Ok((s.to_string(), None)),
        None => {
            let f = std::fs::File::open(path)?;
            let fd = std::os::unix::io::AsRawFd::as_raw_fd(&f);
            Ok((format!("/proc/self/fd/{fd}"), Some(f)))
        }
    }
}

/// Classifies a failure to open a file. FFmpeg reports a missing MP4 index only in its log, so a
/// file that starts like an MP4/MOV (an `ftyp` box) but cannot be opened is taken as truncated.
fn open_failure(path: &Path, e: ff::Error) -> (FailureKind, String) {
    let mut head = [0u8; 12];
    let mp4_like = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .map(|_| &head[4..8] == b"ftyp")
        .unwrap_or(false);
    if mp4_like {
        (
            FailureKind::Truncated,
            format!("an MP4/MOV file without its index (moov), probably cut off: {e}"),
        )
    } else {
        (
            FailureKind::NotAVideo,
            format!("not a decodable video: {e}"),
        )
    }
}

pub struct FfmpegSource {
    path: PathBuf,
    input: ff::format::context::Input,
    stream_index: usize,
    decoder: ff::decoder::Video,
    time_base: f64,
    /// Time origin in seconds: the container's start time, so timestamps are the positions a
    /// player shows (the first video frame may come later than 0, e.g. after an edit list).
    origin: Option<f64>,
    nominal_rate: f64,
    timeline: Timeline,
    sampler: Sampler,
    converter: Converter,
    /// Sampled frames NVDEC decoded stay in this GPU pipeline's memory where they can
    /// (`nvdec::nv12_surface`).
    keep_on: Option<Arc<DevicePlane>>,
    opts: DecodeOptions,
    /// Packets the decoder refused since its last frame (NVDEC gives up after a few).
    errors_in_a_row: u32,
    info: VideoInfo,
    stats: DecodeStats,
    eof_sent: bool,
    /// The demuxer returned the end of the stream or an error: nothing more is read.
    input_done: bool,
    /// The decoder was sent end-of-stream to drain it before a skipped GOP.
    draining: bool,
    skipper: GopSkipper<ff::Packet>,
    /// Key frames no sample takes, passed over (`--sampling keyframe`).
    keys: KeySkipper<ff::Packet>,
    /// Where packets say whether their picture is a reference.
    ref_syntax: RefSyntax,
    /// Whether the first decoded frame was flagged interlaced (`watch_interlacing`).
    first_interlaced: Option<bool>,
    finished: bool,
    decoded: ff::frame::Video,
    watchdog: Watchdog,
    /// Frames the container's header announces (0 when it does not say).
    declared_frames: u64,
    /// Sampled frames still to pass over without converting them (resuming after a checkpoint).
    skip: u64,
    /// Sampled frames up to this time were handed out by a decoder this one replaced
    /// (`continue_on_cpu`).
    skip_through: Option<f64>,
    /// Time of the last sampled frame (handed out or passed over).
    last_sampled: Option<f64>,
    /// Packets of the video stream read so far.
    packets: u64,
}

/// Aborts blocking FFmpeg reads when the job is stopped or no packet has arrived for the timeout.
#[derive(Clone)]
struct Watchdog {
    start: Instant,
    last_progress_ms: Arc<AtomicU64>,
    timeout: Duration,
}

impl Watchdog {
    fn new(timeout: Duration) -> Watchdog {
        Watchdog {
            start: Instant::now(),
            last_progress_ms: Arc::new(AtomicU64::new(0)),
            timeout,
        }
    }
    fn progress(&self) {
        self.last_progress_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn stalled(&self) -> bool {
        let last = Duration::from_millis(self.last_progress_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last) > self.timeout
    }
    fn should_abort(&self) -> bool {
        crate::resume::stop_requested() || self.stalled()
    }
    fn failure_kind(&self) -> FailureKind {
        if self.stalled() {
            FailureKind::Stalled
        } else {
            FailureKind::Other
        }
    }
}

// SAFETY: the FFmpeg contexts are owned exclusively by this value and only used through `&mut self`;
// FFmpeg allows a demuxer/decoder pair to move between threads when not used concurrently.
unsafe impl Send for FfmpegSource {}

impl FfmpegSource {
    /// Opens `path`; the stall timeout bounds how long any read may make no progress (a watchdog
    /// against files and file systems that hang); `nvdec`: decode on this GPU with NVDEC where
    /// it can (`nvdec` module), else on the CPU.
    pub fn open(path: &Path, opts: &DecodeOptions, nvdec: Option<Nvdec>) -> Result<FfmpegSource> {
        let (every, sampling) = (opts.every, opts.sampling);
        init();
        let err = |m: String| Error::video(path, FailureKind::NotAVideo, m);
        match std::fs::File::open(path).and_then(|f| f.metadata()) {
            Ok(m) if m.len() == 0 => {
                return Err(Error::video(path, FailureKind::Empty, "zero-byte file"))
            }
            Ok(_) => {}
            Err(e) => {
                return Err(Error::video(
                    path,
                    FailureKind::Unreadable,
                    format!("cannot read: {e}"),
                ))
            }
        }
        let watchdog = Watchdog::new(opts.stall_timeout);
        let w = watchdog.clone();
        let (name, _keep_open) = ffmpeg_path(path).map_err(|e| {
            Error::video(path, FailureKind::Unreadable, format!("cannot read: {e}"))
        })?;
        let input = ff::format::input_with_interrupt(&name, move || w.should_abort()).map_err(
            |e| match e {
                ff::Error::Exit => {
                    Error::video(path, watchdog.failure_kind(), "opening the file stalled")
                }
                e => {
                    let (kind, message) = open_failure(path, e);
                    Error::video(path, kind, message)
                }
            },
        )?;
        let container = input.format().name().to_string();
        let stream = input
            .streams()
            .best(ff::media::Type::Video)
            .ok_or_else(|| {
                Error::video(
                    path,
                    FailureKind::NoVideoStream,
                    "no video stream (audio only?)",
                )
            })?;
        let stream_index = stream.index();
        let tb = stream.time_base();
        let time_base = if tb.denominator() != 0 {
            tb.numerator() as f64 / tb.denominator() as f64
        } else {
            0.0
        };
        let mut ctx = ff::codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| err(format!("unsupported codec parameters: {e}")))?;
        let hardware = nvdec
            .as_ref()
            .map(|n| super::nvdec::attach(&mut ctx, n.device));
        // Frames of another CUDA context than the primary one are not ours to read.
        let keep_on = nvdec
            .and_then(|n| n.keep)
            .filter(|_| matches!(hardware, Some(Ok(true))));
        let (decoder_name, decoder_fallback) = match hardware {
            None => ("cpu", None),
            Some(Ok(_)) => ("nvdec", None),
            Some(Err(why)) => {
                tracing::warn!("{}: decoding on the CPU, not NVDEC: {why}", path.display());
                ("cpu", Some(why))
            }
        };
        if ctx.id() == ff::codec::Id::H264 {
            // SAFETY: the context is valid and not yet opened; has_b_frames is a plain field.
            unsafe {
                let c = ctx.as_mut_ptr();
                (*c).has_b_frames =
                    (*c).has_b_frames
                        .max(h264_max_reorder((*c).level, (*c).width, (*c).height));
            }
        }
        ctx.set_threading(ff::codec::threading::Config {
            kind: ff::codec::threading::Type::Frame,
            // NVDEC does the work on the GPU: one thread keeps the decode surfaces at the
            // minimum the stream needs, so many sessions fit on one GPU.
            count: if decoder_name == "nvdec" { 1 } else { 0 },
            ..Default::default()
        });
        if sampling == Sampling::Keyframe {
            // The decoder still parses every packet (parameter sets can change anywhere) but
            // decodes only key frames.
            // SAFETY: the context is valid and not yet opened; skip_frame is a plain field.
            unsafe { (*ctx.as_mut_ptr()).skip_frame = ff::ffi::AVDiscard::AVDISCARD_NONKEY };
        }
        let decoder = ctx
            .decoder()
            .video()
            .map_err(|e| err(format!("no decoder for this video codec: {e}")))?;
        let rate = |r: ff::Rational| {
            (r.denominator() > 0 && r.numerator() > 0)
                .then(|| r.numerator() as f64 / r.denominator() as f64)
        };
        // r_frame_rate can be a bogus time-base value (90000/1) on VFR files; prefer the average.
        let nominal =
            rate(stream.avg_frame_rate()).or_else(|| rate(stream.rate()).filter(|r| *r <= 300.0));
        let rotation = stream
            .side_data()
            .find(|sd| sd.kind() == ff::codec::packet::side_data::Type::DisplayMatrix)
            .map(|sd| {
                let data = sd.data();
                if data.len() < 36 {
                    return 0;
                }
                // SAFETY: a display matrix is nine i32 values; av_display_rotation_get reads them.
                let ccw = unsafe { ff::ffi::av_display_rotation_get(data.as_ptr() as *const i32) };
                if ccw.is_nan() {
                    0
                } else {
                    (((-ccw / 90.0).round() as i64 * 90).rem_euclid(360)) as u32
                }
            })
            .unwrap_or(0);
        let sar = decoder.aspect_ratio();
        let sar = if sar.numerator() > 0 && sar.denominator() > 0 {
            (sar.numerator(), sar.denominator())
        } else {
            (1, 1)
        };
        let (cw, ch) = (decoder.width(), decoder.height());
        if cw == 0 || ch == 0 {
            return Err(err(
                "the video stream has no frame size (damaged header)".into()
            ));
        }
        let display_w = display_width(cw, sar);
        let (width, height) = if rotation % 180 == 90 {
            (ch, display_w)
        } else {
            (display_w, ch)
        };
        let duration = {
            let d = input.duration();
            if d > 0 {
                Some(d as f64 / ff::ffi::AV_TIME_BASE as f64)
            } else if stream.duration() > 0 {
                Some(stream.duration() as f64 * time_base)
            } else {
                None
            }
        };
        let raw = RAW_FORMATS.contains(&container.as_str());
        let declared_frames = stream.frames().max(0) as u64;
        // SAFETY: the format context is valid while `input` lives; start_time is a plain field.
        let container_start = unsafe { (*input.as_ptr()).start_time };
        let stream_start = stream.start_time();
        let origin = if raw {
            None
        } else if container_start != ff::ffi::AV_NOPTS_VALUE {
            Some(container_start as f64 / ff::ffi::AV_TIME_BASE as f64)
        } else if stream_start != ff::ffi::AV_NOPTS_VALUE {
            Some(stream_start as f64 * time_base)
        } else {
            None
        };
        let info = VideoInfo {
            container,
            codec: decoder
                .codec()
                .map(|c| c.name().to_string())
                .unwrap_or_else(|| format!("{:?}", decoder.id())),
            coded_width: cw,
            coded_height: ch,
            width,
            height,
            rotation,
            sample_aspect_ratio: sar,
            pixel_format: format!("{:?}", decoder.format()).to_lowercase(),
            color_matrix: format!("{:?}", decoder.color_space()),
            color_range: format!("{:?}", decoder.color_range()),
            interlaced: false,
            nominal_frame_rate: nominal,
            duration,
            timestamps: if raw {
                TimestampSource::NominalRate
            } else {
                TimestampSource::Stream
            },
            decoder: decoder_name.into(),
            decoder_fallback,
        };
        let nominal_rate = nominal.unwrap_or(25.0);
        let timeline = Timeline::new(
            1.0 / nominal_rate,
            (info.container == "mpegts").then_some(60.0),
        );
        // Frames are passed over only where packets have timestamps the sampler copies can follow.
        let may_pass_over = !raw && origin.is_some() && !opts.decode_all;
        let keys = KeySkipper::new(every, time_base, origin.unwrap_or(0.0), timeline.clone());
        let keys = match sampling {
            Sampling::Keyframe if may_pass_over => keys,
            _ => keys.off(),
        };
        let skipper = GopSkipper::new(every, time_base, origin.unwrap_or(0.0));
        let skipper = match sampling {
            Sampling::Exact if may_pass_over => skipper,
            _ => skipper.decode_all(),
        };
        // SAFETY: the opened decoder's extradata is `extradata_size` bytes (or null).
        let extradata = unsafe {
            let c = decoder.as_ptr();
            if (*c).extradata.is_null() || (*c).extradata_size <= 0 {
                &[][..]
            } else {
                std::slice::from_raw_parts((*c).extradata, (*c).extradata_size as usize)
            }
        };
        let ref_syntax = RefSyntax::of(decoder.id(), extradata);
        Ok(FfmpegSource {
            path: path.to_path_buf(),
            input,
            stream_index,
            decoder,
            time_base,
            origin,
            nominal_rate,
            timeline,
            sampler: Sampler::new(every),
            converter: Converter::default(),
            keep_on,
            opts: *opts,
            errors_in_a_row: 0,
            info,
            stats: DecodeStats::default(),
            eof_sent: false,
            input_done: false,
            draining: false,
            skipper,
            keys,
            ref_syntax,
            first_interlaced: None,
            finished: false,
            decoded: ff::frame::Video::empty(),
            watchdog,
            declared_frames,
            skip: 0,
            skip_through: None,
            last_sampled: None,
            packets: 0,
        })
    }

    fn timestamp_of(&mut self, index: u64) -> f64 {
        let pts = match self.info.timestamps {
            TimestampSource::Stream => self.decoded.timestamp().or(self.decoded.pts()),
            TimestampSource::NominalRate => None,
        };
        let raw = match pts {
            Some(p) if self.time_base > 0.0 => {
                let t = p as f64 * self.time_base;
                t - *self.origin.get_or_insert(t)
            }
            // The first frame has none: the stream has none; use the nominal rate throughout.
            _ if index == 0 || self.info.timestamps == TimestampSource::NominalRate => {
                if self.info.timestamps == TimestampSource::Stream {
                    tracing::warn!(
                        "{}: frames carry no timestamps; using the nominal rate {:.3} fps",
                        self.path.display(),
                        self.nominal_rate
                    );
                }
                self.info.timestamps = TimestampSource::NominalRate;
                index as f64 / self.nominal_rate
            }
            // One frame without a timestamp in a stream that has them: one frame after the last.
            _ => {
                self.stats.frames_without_timestamp += 1;
                self.stats.last_timestamp + 1.0 / self.nominal_rate
            }
        };
        if pts.is_some() && self.info.timestamps == TimestampSource::Stream {
            return self.timeline.map(raw);
        }
        // Already on the corrected timeline (derived from the previous frame or the frame index).
        self.timeline.map_corrected(raw)
    }

    /// The presentation index and media time of the frame just decoded.
    fn index_and_time(&mut self) -> (u64, f64) {
        let decoded = self.stats.frames_decoded;
        match self.opts.sampling {
            Sampling::Exact => {
                let index = decoded + self.skipper.dropped_shown();
                (index, self.timestamp_of(index))
            }
            Sampling::Keyframe if self.info.timestamps == TimestampSource::NominalRate => {
                let position = self.decoded.pts().map_or(decoded, |p| p.max(0) as u64);
                let t = self
                    .timeline
                    .map_corrected(position as f64 / self.nominal_rate);
                (position, t)
            }
            Sampling::Keyframe => {
                let t = self.timestamp_of(decoded);
                ((t * self.nominal_rate).round().max(0.0) as u64, t)
            }
        }
    }

    /// Reads packets until the decoder has a frame for us; false at the end of the stream.
    fn receive(&mut self) -> Result<bool> {
        loop {
            if self.nvdec_failing() {
                return Ok(false);
            }
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => {
                    let pts = self.decoded.timestamp().or(self.decoded.pts());
                    let mut dropped = self.skipper.output(pts);
                    dropped.extend(self.keys.output(pts));
                    self.pass_through_timeline(&dropped);
                    self.watch_interlacing();
                    return Ok(true);
                }
                Err(ff::Error::Eof) if self.draining => {
                    // Drained before a skipped GOP: start again as after a seek.
                    self.decoder.flush();
                    self.skipper.drained();
                    self.draining = false;
                }
                Err(ff::Error::Eof) => return Ok(false),
                Err(ff::Error::Other { errno }) if errno == libc::EAGAIN => {}
                Err(e) => {
                    // A frame that failed to decode: count it and go on.
                    self.count_corrupt();
                    self.count_decoder_error(&e);
                    continue;
                }
            }
            if self.eof_sent {
                return Ok(false);
            }
            self.feed()?;
        }
    }

    /// A packet the demuxer or decoder could not use: counted, and nothing more is left out of the
    /// file (a damaged packet passed over would still count as a frame).
    fn count_corrupt(&mut self) {
        self.stats.corrupt_packets += 1;
        self.skipper.stop();
        self.keys.stop();
    }

    /// A decoder error that is not the data's (`failure_of_decoder`) counts towards handing the
    /// file to the CPU decoder; damaged data (which the CPU decoder would meet too) does not.
    fn count_decoder_error(&mut self, e: &ff::Error) {
        if failure_of_decoder(e) {
            self.errors_in_a_row += 1;
        }
    }

    /// NVDEC refused too many packets in a row (`NVDEC_ERRORS_IN_A_ROW`): the file goes to the
    /// CPU decoder.
    fn nvdec_failing(&self) -> bool {
        self.info.decoder == "nvdec" && self.errors_in_a_row >= NVDEC_ERRORS_IN_A_ROW
    }

    /// Decodes the rest of the file on the CPU: opens it again with FFmpeg's software decoder
    /// and passes over the sampled frames already handed out, so the frames that follow are the
    /// ones decoding on the CPU from the start gives (the same indices and timestamps). Used
    /// when NVDEC fails in the middle of a stream; recorded in `decoder_fallback`.
    pub fn continue_on_cpu(&mut self, why: &str) -> Result<()> {
        let at = self.stats.last_timestamp;
        tracing::warn!(
            "{}: {why} at {at:.1} s; decoding again on the CPU, going on after the frames already sampled",
            self.path.display()
        );
        let mut cpu = FfmpegSource::open(&self.path, &self.opts, None)?;
        // By time, not by count: frames the failing decoder lost would shift a count. Sampled
        // frames still to pass over for a resumed run follow.
        cpu.skip_through = self.last_sampled;
        cpu.skip = self.skip;
        let after = self
            .last_sampled
            .map_or_else(|| "the start".to_string(), |t| format!("{t:.3} s"));
        cpu.info.decoder_fallback = Some(format!(
            "{why} at {at:.1} s: the file was decoded again on the CPU; frames sampled after {after} are the CPU decoder's"
        ));
        *self = cpu;
        Ok(())
    }

    /// Frames left out still pass through the timeline, in presentation order: its MPEG-TS splice
    /// detection compares neighbouring frames, and the last time reached is the file's.
    fn pass_through_timeline(&mut self, dropped: &[i64]) {
        for &pts in dropped {
            let t = pts as f64 * self.time_base;
            self.stats.last_timestamp = self.timeline.map(t - self.origin.unwrap_or(t));
        }
    }

    /// FFmpeg's H.264 decoder flags a frame-coded picture shown as two fields (pic_struct 3/4)
    /// interlaced or not after the picture decoded before it, and a flush resets that: leaving
    /// pictures out could change which frames are deinterlaced. Skipping stops (and passing over
    /// key frames) when the flag changes within a stream.
    fn watch_interlacing(&mut self) {
        let interlaced = self.decoded.is_interlaced();
        match self.first_interlaced {
            None => self.first_interlaced = Some(interlaced),
            Some(first) if first != interlaced => {
                self.skipper.stop();
                self.keys.stop();
            }
            Some(_) => {}
        }
    }

    /// Sends the next packet the skipper lets through to the decoder (or drains it before a
    /// skipped GOP, or sends end-of-stream), counting the packets it passes over on the way.
    fn feed(&mut self) -> Result<()> {
        loop {
            if let Some((packet, send)) = self.keys.next() {
                if send {
                    self.send(&packet);
                    return Ok(());
                }
                continue;
            }
            match self.skipper.next() {
                Some(Step::Feed(packet)) if self.keys.active() => {
                    let info = KeyInfo {
                        pts: packet.pts(),
                        key: packet.is_key(),
                        hidden: hidden(&packet),
                        restart: packet.is_key()
                            && packet.data().is_some_and(|d| self.ref_syntax.is_restart(d)),
                    };
                    self.keys.push(packet, info);
                }
                Some(Step::Feed(packet)) => {
                    self.send(&packet);
                    return Ok(());
                }
                Some(Step::Drop(_)) => {}
                Some(Step::Drain) => {
                    let _ = self.decoder.send_eof();
                    self.draining = true;
                    return Ok(());
                }
                None if self.eof_sent => return Ok(()),
                None => {
                    // Once the input has ended (or failed), it is not read again.
                    let packet = match self.input_done {
                        false => self.read_packet()?,
                        true => None,
                    };
                    self.input_done = packet.is_none();
                    match packet {
                        Some(packet) => self.skipper.push(packet),
                        None if !self.skipper.ended() => self.skipper.end(),
                        None if !self.keys.ended() => self.keys.end(),
                        None => {
                            let _ = self.decoder.send_eof();
                            self.eof_sent = true;
                            return Ok(());
                        }
                    }
                }
            }
        }
    }

    fn send(&mut self, packet: &ff::Packet) {
        if let Err(e) = self.decoder.send_packet(packet) {
            self.count_corrupt();
            self.count_decoder_error(&e);
        }
    }

    /// The next packet of our stream, `None` at its end.
    fn read_packet(&mut self) -> Result<Option<Packet<ff::Packet>>> {
        loop {
            let mut packet = ff::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {
                    self.watchdog.progress();
                    if packet.stream() != self.stream_index {
                        continue;
                    }
                    self.packets += 1;
                    if self.opts.sampling == Sampling::Keyframe
                        && self.info.timestamps == TimestampSource::NominalRate
                    {
                        // Raw streams carry no timestamps: the packet's position stands in, and
                        // the decoder hands it back with the key frames it decodes.
                        packet.set_pts(Some(self.packets as i64 - 1));
                    }
                    let (reference, restart) = match (self.skipper.active(), packet.data()) {
                        (true, Some(data)) => (
                            self.ref_syntax.is_reference(data),
                            packet.is_key() && self.ref_syntax.is_restart(data),
                        ),
                        _ => (None, false),
                    };
                    return Ok(Some(Packet {
                        pts: packet.pts(),
                        key: packet.is_key(),
                        hidden: hidden(&packet),
                        reference,
                        restart,
                        payload: packet,
                    }));
                }
                Err(ff::Error::Eof) => return Ok(None),
                Err(ff::Error::InvalidData) => self.count_corrupt(),
                Err(ff::Error::Exit) if crate::resume::stop_requested() => {
                    return Err(Error::Interrupted)
                }
                Err(ff::Error::Exit) => {
                    return Err(Error::video(
                        &self.path,
                        FailureKind::Stalled,
                        format!("no data for {} s", self.watchdog.timeout.as_secs()),
                    ))
                }
                Err(e) => {
                    self.stats.partial = true;
                    self.stats.partial_reason = Some(format!("read error: {e}"));
                    return Ok(None);
                }
            }
        }
    }

    /// The sampled frame just decoded, kept in GPU memory where it can be, else as BGR.
    fn sampled_image(&mut self) -> Result<FrameImage> {
        if let Some(plane) = &self.keep_on {
            let kept = super::nvdec::nv12_surface(
                &self.decoded,
                self.info.rotation,
                self.info.sample_aspect_ratio,
            )
            .map_err(str::to_string)
            .and_then(|(planes, layout)| plane.keep(planes, layout).map_err(|e| e.to_string()));
            match kept {
                Ok(frame) => return Ok(FrameImage::Device(frame)),
                Err(why) => {
                    tracing::info!(
                        "{}: sampled frames go through the host ({why})",
                        self.path.display()
                    );
                    self.keep_on = None;
                }
            }
        }
        self.convert().map(FrameImage::Host)
    }

    fn convert(&mut self) -> Result<BgrImage> {
        let downloaded;
        let f = if super::nvdec::on_gpu(&self.decoded) {
            downloaded = super::nvdec::download(&self.decoded)
                .map_err(|m| Error::video(&self.path, FailureKind::Other, m))?;
            &downloaded
        } else {
            &self.decoded
        };
        let mut img = self
            .converter
            .to_bgr(f, self.info.sample_aspect_ratio)
            .map_err(|m| Error::video(&self.path, FailureKind::Other, m))?;
        if f.is_interlaced() {
            self.info.interlaced = true;
            self.stats.deinterlaced_frames += 1;
            img.deinterlace_blend();
        }
        Ok(img.rotate_clockwise(self.info.rotation))
    }
}

/// The container marks the packet to be decoded but not shown (edit-list pre-roll).
fn hidden(packet: &ff::Packet) -> bool {
    // SAFETY: a packet from the demuxer; flags is a plain field.
    let flags = unsafe { (*ff::codec::packet::Ref::as_ptr(packet)).flags };
    flags & ff::ffi::AV_PKT_FLAG_DISCARD != 0
}

/// Whether a decoding error is the decoder's own (a driver or hardware failure, out of decode
/// surfaces or memory) rather than damaged data, which FFmpeg reports as invalid data.
fn failure_of_decoder(e: &ff::Error) -> bool {
    !matches!(e, ff::Error::InvalidData)
}

/// Consecutive packets NVDEC may fail to decode before the file goes to the CPU decoder (a
/// hardware or driver failure fails every packet; damaged data in a recording, a few).
const NVDEC_ERRORS_IN_A_ROW: u32 = 8;

/// The most frames an H.264 stream at `level` and this size may hold back for reordering (as
/// FFmpeg derives it in strict mode). Starting the decoder there, instead of growing the buffer
/// when deeper reordering first shows (which drops a frame, and a different one depending on
/// which packets were left out), keeps every frame of streams whose headers do not state their
/// reordering depth.
fn h264_max_reorder(level: i32, width: i32, height: i32) -> i32 {
    const MAX_DPB_MBS: [(i32, i32); 16] = [
        (10, 396),
        (11, 900),
        (12, 2376),
        (13, 2376),
        (20, 2376),
        (21, 4752),
        (22, 8100),
        (30, 8100),
        (31, 18000),
        (32, 20480),
        (40, 32768),
        (41, 32768),
        (42, 34816),
        (50, 110400),
        (51, 184320),
        (52, 184320),
    ];
    let macroblocks = ((width + 15) / 16).max(1) * ((height + 15) / 16).max(1);
    MAX_DPB_MBS
        .iter()
        .find(|(l, _)| *l == level)
        .map_or(15, |(_, mbs)| (mbs / macroblocks).min(15))
}

impl FfmpegSource {
    /// A file that ends well before the frame count its header announces was cut off: mark it
    /// partial (its frames are still processed).
    fn check_complete(&mut self) {
        let got = match self.opts.sampling {
            Sampling::Exact => self.stats.frames_decoded + self.skipper.frames_dropped,
            Sampling::Keyframe => self.packets,
        };
        let declared = self.declared_frames;
        if declared > 0 && got + 2 + declared / 100 < declared && !self.stats.partial {
            self.stats.partial = true;
            self.stats.partial_reason = Some(format!(
                "the file ends after {got} of the {declared} frames its header lists (cut off?)"
            ));
        }
    }

    /// Passes over the next `n` sampled frames without converting them (they were processed
    /// before a checkpoint).
    pub fn skip_sampled(&mut self, n: u64) {
        self.skip = n;
    }
}

impl FrameSource for FfmpegSource {
    fn info(&self) -> &VideoInfo {
        &self.info
    }

    fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    fn next_sampled(&mut self) -> Result<Option<SampledFrame>> {
        // The time spent by the caller on the previous frames (inference) is not a stall.
        self.watchdog.progress();
        while !self.finished {
            let frame = self.receive()?;
            if self.nvdec_failing() {
                self.continue_on_cpu(&format!(
                    "NVDEC refused {} packets in a row",
                    self.errors_in_a_row
                ))?;
                continue;
            }
            self.errors_in_a_row = 0;
            if !frame {
                self.finished = true;
                let mut rest = self.skipper.finish();
                rest.extend(self.keys.finish());
                self.pass_through_timeline(&rest);
                self.stats.frames_not_decoded = match self.opts.sampling {
                    Sampling::Exact => self.skipper.frames_dropped,
                    Sampling::Keyframe => self.packets.saturating_sub(self.stats.frames_decoded),
                };
                self.check_complete();
                break;
            }
            if self.info.decoder == "nvdec" && !super::nvdec::on_gpu(&self.decoded) {
                let format = format!("{:?}", self.decoded.format()).to_lowercase();
                tracing::warn!(
                    "{}: NVDEC could not decode this stream; decoding on the CPU ({format})",
                    self.path.display()
                );
                self.info.decoder = "cpu".into();
                self.info.decoder_fallback = Some(format!(
                    "NVDEC could not decode this stream (decoded on the CPU as {format})"
                ));
            }
            let (index, t) = self.index_and_time();
            self.stats.frames_decoded += 1;
            self.stats.timestamp_discontinuities = self.timeline.discontinuities;
            self.stats.last_timestamp = t;
            if self.sampler.take(t) {
                self.stats.frames_sampled += 1;
                if self.skip_through.is_some_and(|through| t <= through) {
                    continue;
                }
                self.last_sampled = Some(t);
                if self.skip > 0 {
                    self.skip -= 1;
                    continue;
                }
                let image = self.sampled_image()?;
                return Ok(Some(SampledFrame {
                    index,
                    timestamp: t,
                    image,
                }));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn damaged_data_is_not_taken_for_a_failing_decoder() {
        use super::failure_of_decoder;
        use ffmpeg_next::Error;
        assert!(!failure_of_decoder(&Error::InvalidData));
        // FFmpeg's NVDEC: CUDA failures, no decode surface left, out of memory.
        assert!(failure_of_decoder(&Error::External));
        assert!(failure_of_decoder(&Error::Other {
            errno: libc::ENOMEM
        }));
        assert!(failure_of_decoder(&Error::Bug));
    }
}
