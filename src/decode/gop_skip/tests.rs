//! The skipper against a model decoder: streams with B-frames, closed and open GOPs, field
//! coding and odd timestamps; every run is compared with decoding every packet.

use std::collections::BTreeMap;

use super::*;
use crate::decode::sampler::{Sampler, Timeline};

/// A coded picture: its place in presentation order (ticks), the timestamp the container gives
/// it, the pictures it refers to.
#[derive(Clone, Debug)]
struct Picture {
    pts: i64,
    stamp: Option<i64>,
    key: bool,
    refs: Vec<i64>,
    /// Other pictures may refer to it.
    reference: bool,
    /// Packets per shown frame (2: field-coded, the second field carries no picture of its own).
    second_field: bool,
}

/// Pictures in decode order: `n` frames, a key frame every `gop`, `b` B-frames between
/// references; `open`: the B-frames before each key frame are coded after it and refer to it and
/// to the previous GOP (leading pictures).
fn stream(n: i64, gop: i64, b: i64, open: bool) -> Vec<Picture> {
    let keys: Vec<i64> = (0..n).step_by(gop as usize).collect();
    stream_with_keys(n, &keys, b, open, false)
}

/// As `stream`, with key frames at `keys` (sorted, starting at 0); `pyramid`: the middle B-frame
/// of each run of two or more is a reference for the others (x264's B-pyramid).
fn stream_with_keys(n: i64, keys: &[i64], b: i64, open: bool, pyramid: bool) -> Vec<Picture> {
    let is_key = |p: i64| keys.binary_search(&p).is_ok();
    let mut refs: Vec<i64> = Vec::new();
    let mut since_key = 0;
    for p in 0..n {
        since_key = if is_key(p) { 0 } else { since_key + 1 };
        let last_of_gop = is_key(p + 1) || p == n - 1;
        if is_key(p) || since_key % (b + 1) == 0 || (last_of_gop && (!open || p == n - 1)) {
            refs.push(p);
        }
    }
    let mut out = Vec::new();
    let mut prev: Option<i64> = None;
    for &r in &refs {
        let r_refs = if is_key(r) {
            vec![]
        } else {
            prev.into_iter().collect()
        };
        out.push(Picture {
            pts: r,
            stamp: Some(r),
            key: is_key(r),
            refs: r_refs,
            reference: true,
            second_field: false,
        });
        if let Some(p) = prev {
            let b_frame = |pts: i64, refs: Vec<i64>, reference: bool| Picture {
                pts,
                stamp: Some(pts),
                key: false,
                refs,
                reference,
                second_field: false,
            };
            let middle = (pyramid && r - p > 2).then_some(p + (r - p) / 2);
            if let Some(m) = middle {
                out.push(b_frame(m, vec![p, r], true));
            }
            for bpts in (p + 1..r).filter(|t| Some(*t) != middle) {
                let refs = match middle {
                    Some(m) if bpts < m => vec![p, m],
                    Some(m) => vec![m, r],
                    None => vec![p, r],
                };
                out.push(b_frame(bpts, refs, false));
            }
        }
        prev = Some(r);
    }
    // Frames after the last reference (open GOP at the end of the stream): none by construction.
    out
}

/// A decoder that returns frames in presentation order after `delay` pictures, knows which of
/// them lack a reference (decoding started after a flush), and pairs field packets.
struct ModelDecoder {
    delay: usize,
    /// Pictures inside, by presentation order: (timestamp, intact).
    held: BTreeMap<i64, (Option<i64>, bool)>,
    /// Pictures decoded since the last flush, and whether each is intact.
    decoded: BTreeMap<i64, bool>,
    draining: bool,
}

impl ModelDecoder {
    fn new(delay: usize) -> Self {
        ModelDecoder {
            delay,
            held: BTreeMap::new(),
            decoded: BTreeMap::new(),
            draining: false,
        }
    }
    fn send(&mut self, p: &Picture) {
        if p.second_field {
            return;
        }
        let intact = p.refs.iter().all(|r| self.decoded.get(r) == Some(&true));
        self.decoded.insert(p.pts, intact);
        self.held.insert(p.pts, (p.stamp, intact));
    }
    fn receive(&mut self) -> Option<(Option<i64>, bool)> {
        if self.held.len() > self.delay || (self.draining && !self.held.is_empty()) {
            return self.held.pop_first().map(|(_, v)| v);
        }
        None
    }
    fn flush(&mut self) {
        self.held.clear();
        self.decoded.clear();
        self.draining = false;
    }
}

#[derive(Debug, PartialEq)]
struct Run {
    /// (presentation index, timestamp in ticks) of every sampled frame.
    sampled: Vec<(u64, i64)>,
    decoded: u64,
    skipped_gops: u64,
}

/// Drives the model decoder as `FfmpegSource` drives FFmpeg's; `known_refs`: packets say whether
/// they are references (else the skipper must assume they are).
fn run(pictures: &[Picture], every: f64, tick: f64, skipping: bool, known_refs: bool) -> Run {
    let skipper = GopSkipper::new(every, tick, 0.0);
    let mut skipper = if skipping {
        skipper
    } else {
        skipper.decode_all()
    };
    let mut dec = ModelDecoder::new(3);
    let mut sampler = Sampler::new(every);
    let mut timeline = Timeline::new(tick, None);
    let mut last = 0.0;
    let mut packets = pictures.iter();
    let mut decoded = 0u64;
    let (mut ended, mut eof_sent) = (false, false);
    let mut sampled = Vec::new();
    loop {
        if let Some((stamp, intact)) = dec.receive() {
            skipper.output(stamp);
            let index = decoded + skipper.dropped_shown();
            decoded += 1;
            last = match stamp {
                Some(s) => timeline.map(s as f64 * tick),
                None => timeline.map_corrected(last + tick),
            };
            if sampler.take(last) {
                assert!(
                    intact,
                    "sampled frame {index} was decoded without its references"
                );
                sampled.push((index, (last / tick).round() as i64));
            }
            continue;
        }
        if dec.draining {
            dec.flush();
            skipper.drained();
            if eof_sent {
                break;
            }
            continue;
        }
        // Feed one packet (or drain), counting the packets passed over on the way.
        loop {
            match skipper.next() {
                Some(Step::Feed(p)) => {
                    dec.send(p);
                    break;
                }
                Some(Step::Drop(_)) => {}
                Some(Step::Drain) => {
                    dec.draining = true;
                    break;
                }
                None => match packets.next() {
                    Some(p) => skipper.push(Packet {
                        pts: p.stamp,
                        key: p.key,
                        hidden: false,
                        reference: known_refs.then_some(p.reference),
                        restart: p.key,
                        payload: p,
                    }),
                    None if !ended => {
                        ended = true;
                        skipper.end();
                    }
                    None => {
                        dec.draining = true;
                        eof_sent = true;
                        break;
                    }
                },
            }
        }
    }
    Run {
        sampled,
        decoded,
        skipped_gops: skipper.gops_skipped,
    }
}

fn same_as_decoding_everything(
    pictures: &[Picture],
    every: f64,
    tick: f64,
    known_refs: bool,
) -> Run {
    let all = run(pictures, every, tick, false, known_refs);
    let fast = run(pictures, every, tick, true, known_refs);
    assert_eq!(fast.sampled, all.sampled, "sampled frames differ");
    assert_eq!(all.skipped_gops, 0);
    fast
}

#[test]
fn half_second_gops_at_one_sample_per_second_decode_about_half() {
    // 25 fps, GOP 12, two B-frames, closed: 60 s.
    let pictures = stream(1500, 12, 2, false);
    let r = same_as_decoding_everything(&pictures, 1.0, 0.04, false);
    assert_eq!(r.sampled.len(), 60);
    // Of each GOP with a sample point only the packets up to the sampled frame are decoded.
    assert!(r.decoded < 500, "decoded {} of 1500", r.decoded);
    assert!(r.skipped_gops > 50, "{r:?}");
    // Knowing which pictures are references, the B-frames before each sampled frame go too.
    let known = same_as_decoding_everything(&pictures, 1.0, 0.04, true);
    assert!(
        known.decoded < r.decoded - 40,
        "{} vs {}",
        known.decoded,
        r.decoded
    );
}

#[test]
fn long_gops_decode_only_references_and_sampled_frames() {
    // A key frame every 10 s, B-pyramid of three: of the B-frames only the middle ones (the
    // pyramid's references) and the sampled ones are decoded.
    let keys: Vec<i64> = (0..1500).step_by(250).collect();
    let pictures = stream_with_keys(1500, &keys, 3, false, true);
    let r = same_as_decoding_everything(&pictures, 1.0, 0.04, true);
    let references = pictures.iter().filter(|p| p.reference).count() as u64;
    // The first GOP is decoded whole: no frame has come out yet to show the decoder returns
    // one frame per packet.
    let first_gop = pictures
        .iter()
        .filter(|p| p.pts < 250 && !p.reference)
        .count() as u64;
    assert!(
        r.decoded <= references + first_gop + 60,
        "{} decoded; {references} references",
        r.decoded
    );
}

#[test]
fn many_structures_give_the_frames_of_a_full_decode() {
    for &(gop, b, every) in &[
        (1, 0, 1.0),   // intra-only: every unsampled frame is passed over
        (5, 0, 1.0),   // P only
        (12, 2, 1.0),  // broadcast MPEG-2 style
        (13, 3, 0.5),  // period not a multiple of the GOP
        (25, 2, 1.0),  // GOP = period: nothing to skip
        (50, 3, 1.0),  // GOP longer than the period
        (7, 1, 2.3),   // odd period
        (12, 2, 0.04), // every frame sampled
    ] {
        let pictures = stream(700, gop, b, false);
        let r = same_as_decoding_everything(&pictures, every, 0.04, false);
        assert!(!r.sampled.is_empty());
        if gop == 1 && every == 1.0 {
            // The sampled frames, and the first few that show the decoder keeps timestamps.
            assert!(r.decoded <= 28 + 12, "intra-only: {r:?}");
        }
        if gop >= 25 || every <= 0.04 {
            assert_eq!(r.skipped_gops, 0, "gop {gop} every {every}");
        }
    }
}

#[test]
fn open_gops_are_decoded_unless_their_leading_pictures_can_be_dropped() {
    let pictures = stream(750, 12, 2, true);
    let leading = pictures
        .windows(2)
        .filter(|w| w[0].key && w[1].pts < w[0].pts)
        .count();
    assert!(leading > 50, "the model stream must have open GOPs");
    // Not knowing whether leading pictures are references, the GOP before is always decoded.
    // Only the last GOP, which nothing follows, may go.
    let unknown = same_as_decoding_everything(&pictures, 1.0, 0.04, false);
    assert!(unknown.skipped_gops <= 1, "{unknown:?}");
    // Leading pictures that are no references (MPEG-2 B-pictures, H.264 with nal_ref_idc 0)
    // are dropped with the GOP they refer to.
    let known = same_as_decoding_everything(&pictures, 1.0, 0.04, true);
    assert!(known.skipped_gops > 20, "{known:?}");
}

#[test]
fn field_coded_streams_are_decoded_in_full() {
    // Two packets per frame; the decoder returns one frame per pair.
    let mut pictures = Vec::new();
    for p in stream(500, 12, 2, false) {
        let mut second = p.clone();
        second.key = false;
        second.second_field = true;
        second.pts = p.pts * 2 + 1;
        second.stamp = Some(second.pts);
        let mut first = p;
        first.pts *= 2;
        first.stamp = Some(first.pts);
        first.refs = first.refs.iter().map(|r| r * 2).collect();
        pictures.push(first);
        pictures.push(second);
    }
    let r = same_as_decoding_everything(&pictures, 1.0, 0.02, false);
    assert_eq!(r.skipped_gops, 0);
}

#[test]
fn packets_without_timestamps_or_going_back_stop_skipping() {
    let mut missing = stream(1200, 12, 2, false);
    let at = missing.iter().position(|p| p.pts == 600).unwrap();
    missing[at].stamp = None;
    let r = same_as_decoding_everything(&missing, 1.0, 0.04, false);
    assert!(
        r.skipped_gops > 5,
        "skipping before the frame without a timestamp: {r:?}"
    );
    assert!(r.decoded >= 600, "but not after it: {r:?}");

    // A wrap of the clock in the middle: the timeline moves the frames after it.
    let mut wrapped = stream(1200, 12, 2, false);
    for p in wrapped.iter_mut().filter(|p| p.pts >= 600) {
        p.stamp = p.stamp.map(|t| t - 590);
    }
    let r = same_as_decoding_everything(&wrapped, 1.0, 0.04, false);
    assert!(r.skipped_gops > 5 && r.decoded >= 600, "{r:?}");
}

#[test]
fn random_gop_structures_give_the_frames_of_a_full_decode() {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    let mut skipped = 0;
    for _ in 0..60 {
        let n = 200 + next(800) as i64;
        let mut keys = vec![0];
        while let Some(&last) = keys.last() {
            let k = last + 1 + next(40) as i64;
            if k >= n {
                break;
            }
            keys.push(k);
        }
        let b = next(4) as i64;
        let open = next(2) == 1;
        let every = [0.3, 0.5, 1.0, 1.7, 4.0][next(5) as usize];
        let pictures = stream_with_keys(n, &keys, b, open, next(2) == 1);
        skipped += same_as_decoding_everything(&pictures, every, 0.04, next(2) == 1).skipped_gops;
    }
    assert!(skipped > 100, "{skipped}");
}

#[test]
fn output_check_catches_missing_and_foreign_frames() {
    let mut c = OutputCheck::default();
    for p in [0, 3, 1, 2] {
        c.fed(Some(p));
    }
    for p in [0, 1, 2, 3] {
        c.output(Some(p));
    }
    c.drained();
    assert!(!c.broken && c.verified == 4);

    let mut missing = OutputCheck::default();
    missing.fed(Some(0));
    missing.fed(Some(1));
    missing.output(Some(1)); // 0 never came out
    assert!(missing.broken);

    let mut foreign = OutputCheck::default();
    foreign.fed(Some(0));
    foreign.output(Some(5));
    assert!(foreign.broken);

    let mut left = OutputCheck::default();
    left.fed(Some(0));
    left.drained();
    assert!(left.broken);
}
