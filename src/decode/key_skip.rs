//! `--sampling keyframe` without decoding key frames no sample point takes. The decoder decodes
//! only key frames there (it is told to discard the rest), each into one frame, in the order the
//! packets come; so a copy of the timeline and the sampler, fed the key packets' timestamps in
//! that order, knows which key frames sampling will take, and the others need not be decoded
//! (with key frames every half second and a sample a second, half of the decoding). Their
//! timestamps still pass through the job's timeline in order, so its state, and with it every
//! sampled frame, index and timestamp, stays that of decoding every key frame. The packets after
//! a key frame passed over are still sent: the decoder parses them (parameter sets) and discards
//! them.
//!
//! Packets are held back from one key frame to the next, so a key frame is passed over only when
//! its timestamp lies strictly between those of the key frames before and after it: FFmpeg's
//! frame timestamps switch to a guess from decoding timestamps after one out of order, and which
//! guess depends on the packets sent, so from the first key timestamp out of order on every key
//! frame is decoded. Key frames are also passed over only at restart points (an IDR picture in
//! H.264: FFmpeg returns key frames that are only recovery points out of order once others are
//! left out), only after the decoder has returned `VERIFIED_BEFORE_SKIPPING` key frames each
//! with its packet's timestamp, in order; that is checked on every frame (`output`), and any
//! disagreement, a key packet without a timestamp, a hidden (pre-roll) one, a decoding error or a
//! change of the interlaced flag (`stop`) turns passing over off for the rest of the file. Key
//! frames passed over before that stay undecoded (their timestamps still reach the timeline in
//! order); as with `gop_skip`, a damaged file can then differ from decoding every key frame where
//! the damage is — `--decode-all` decodes them all.

use std::collections::VecDeque;

use super::sampler::{Sampler, Timeline};

/// Key frames the decoder must have returned as expected before any is passed over.
const VERIFIED_BEFORE_SKIPPING: u64 = 8;
/// Packets held back at most (a key frame and what follows it); a longer GOP ends passing over.
const MAX_HELD: usize = 1500;

/// What the skipper needs to know of a packet.
#[derive(Clone, Copy, Debug)]
pub struct KeyInfo {
    pub pts: Option<i64>,
    pub key: bool,
    /// The container marks it to be decoded but not shown (edit-list pre-roll).
    pub hidden: bool,
    /// Decoding starts afresh there (`RefSyntax::is_restart`).
    pub restart: bool,
}

pub struct KeySkipper<P> {
    enabled: bool,
    ended: bool,
    time_base: f64,
    origin: f64,
    /// The job's timeline and sampler as they will be after the key frames decided so far.
    timeline: Timeline,
    sampler: Sampler,
    /// A key packet and the packets after it, until the next key packet.
    held: VecDeque<(P, KeyInfo)>,
    /// Packets decided, in order: (packet, whether it is sent to the decoder).
    ready: VecDeque<(P, bool)>,
    /// Timestamp of the last key packet decided.
    last_key: Option<i64>,
    /// Timestamps of the key packets sent and not yet returned, in order.
    pending: VecDeque<i64>,
    /// Timestamps of key packets passed over and not yet handed to the timeline, increasing.
    passed: VecDeque<i64>,
    verified: u64,
    pub passed_over: u64,
}

impl<P> KeySkipper<P> {
    /// A skipper for a stream whose key frames the job maps with `timeline` (a fresh copy of the
    /// job's) and samples every `every` seconds; packet timestamps are `pts × time_base − origin`.
    pub fn new(every: f64, time_base: f64, origin: f64, timeline: Timeline) -> KeySkipper<P> {
        KeySkipper {
            enabled: every > 0.0 && time_base > 0.0,
            ended: false,
            time_base,
            origin,
            timeline,
            sampler: Sampler::new(every),
            held: VecDeque::new(),
            ready: VecDeque::new(),
            last_key: None,
            pending: VecDeque::new(),
            passed: VecDeque::new(),
            verified: 0,
            passed_over: 0,
        }
    }

    /// Never passes anything over (`--decode-all`, exact sampling, raw streams).
    pub fn off(mut self) -> KeySkipper<P> {
        self.enabled = false;
        self
    }

    /// Whether packets go through `push` (passing over is on); once off, packets go straight to
    /// the decoder after whatever `next` still returns.
    pub fn active(&self) -> bool {
        self.enabled
    }

    /// Passing over stops for the rest of the file; what is held is sent.
    pub fn stop(&mut self) {
        self.enabled = false;
        let held: Vec<(P, KeyInfo)> = self.held.drain(..).collect();
        self.ready.extend(held.into_iter().map(|(p, _)| (p, true)));
    }

    /// The next packet of the stream, in decode order.
    pub fn push(&mut self, packet: P, info: KeyInfo) {
        if info.key && self.enabled {
            self.decide(info.pts);
        }
        // Passing over off (perhaps just now), or before the first key frame.
        if !self.enabled || (self.held.is_empty() && !info.key) {
            self.ready.push_back((packet, true));
            return;
        }
        self.held.push_back((packet, info));
        if self.held.len() > MAX_HELD {
            self.stop();
        }
    }

    /// The stream has ended: the last key frame is decoded (nothing after it to check against).
    pub fn end(&mut self) {
        self.ended = true;
        if self.enabled {
            self.decide(None);
        }
        self.stop();
    }

    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The next packet decided: (packet, whether to send it to the decoder).
    pub fn next(&mut self) -> Option<(P, bool)> {
        self.ready.pop_front()
    }

    /// Settles the held key frame now that the next key packet's timestamp (`next`) is known,
    /// and releases it with the packets after it.
    fn decide(&mut self, next: Option<i64>) {
        let Some((_, key)) = self.held.front() else {
            return;
        };
        let key = *key;
        let in_order = match (self.last_key, key.pts, next) {
            (last, Some(p), Some(n)) => last.is_none_or(|l| l < p) && p < n,
            _ => false,
        };
        let Some(p) = key.pts.filter(|_| in_order && key.restart && !key.hidden) else {
            self.stop();
            return;
        };
        self.last_key = Some(p);
        let t = self.timeline.map(p as f64 * self.time_base - self.origin);
        let pass = !self.sampler.take(t) && self.verified >= VERIFIED_BEFORE_SKIPPING;
        if pass {
            self.passed.push_back(p);
            self.passed_over += 1;
        } else {
            self.pending.push_back(p);
        }
        let gop: Vec<(P, KeyInfo)> = self.held.drain(..).collect();
        for (i, (packet, _)) in gop.into_iter().enumerate() {
            self.ready.push_back((packet, !(pass && i == 0)));
        }
    }

    /// The decoder returned a frame with this timestamp: the key frames passed over before it,
    /// in order, whose timestamps the job's timeline must now see (before this frame's).
    pub fn output(&mut self, pts: Option<i64>) -> Vec<i64> {
        let expected = self.pending.pop_front();
        if expected.is_none() || expected != pts {
            self.stop();
        } else {
            self.verified += 1;
        }
        // Passed over, and shown before this frame. By timestamp, not by how many frames were
        // sent before them: a frame the decoder loses would shift a count. (A key frame is
        // passed over only with a later key timestamp after it, so one frame returned after it
        // always releases it.)
        let mut due = Vec::new();
        if let Some(q) = pts {
            while let Some(p) = self.passed.front().copied().filter(|p| *p < q) {
                self.passed.pop_front();
                due.push(p);
            }
        }
        due
    }

    /// The stream is done: key frames passed over after the last frame returned.
    pub fn finish(&mut self) -> Vec<i64> {
        self.passed.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(pts: i64) -> KeyInfo {
        KeyInfo {
            pts: Some(pts),
            key: true,
            hidden: false,
            restart: true,
        }
    }

    fn other() -> KeyInfo {
        KeyInfo {
            pts: None,
            key: false,
            hidden: false,
            restart: false,
        }
    }

    /// A stream of key frames at `times` (seconds, time base 1 ms), each followed by two other
    /// packets, through a decoder that returns each key frame sent `delay` packets later: the
    /// times the job samples, with and without passing over, and how many were passed over.
    fn run(times: &[f64], every: f64, delay: usize) -> (Vec<f64>, Vec<f64>, u64) {
        let ms = |t: &f64| (t * 1000.0).round() as i64;
        let reference = {
            let mut tl = Timeline::new(0.04, Some(60.0));
            let mut s = Sampler::new(every);
            times
                .iter()
                .map(|t| tl.map(ms(t) as f64 / 1000.0))
                .filter(|t| s.take(*t))
                .collect::<Vec<f64>>()
        };
        let mut skipper = KeySkipper::new(every, 0.001, 0.0, Timeline::new(0.04, Some(60.0)));
        let (mut job_tl, mut job_s) = (Timeline::new(0.04, Some(60.0)), Sampler::new(every));
        let mut sampled = Vec::new();
        let mut in_decoder: VecDeque<Option<i64>> = VecDeque::new();
        let mut show = |p: i64, skipper: &mut KeySkipper<(usize, Option<i64>)>| {
            for d in skipper.output(Some(p)) {
                job_tl.map(d as f64 / 1000.0);
            }
            let t = job_tl.map(p as f64 / 1000.0);
            if job_s.take(t) {
                sampled.push(t);
            }
        };
        // Every packet comes out once, in the order pushed, sent or not.
        let mut out = 0;
        let mut send = |skipper: &mut KeySkipper<(usize, Option<i64>)>,
                        in_decoder: &mut VecDeque<_>| {
            while let Some(((seq, packet), sent)) = skipper.next() {
                assert_eq!(seq, out);
                out += 1;
                if sent {
                    in_decoder.push_back(packet);
                }
                while in_decoder.len() > delay {
                    if let Some(p) = in_decoder.pop_front().unwrap() {
                        show(p, skipper);
                    }
                }
            }
        };
        let mut seq = 0..;
        for t in times {
            skipper.push((seq.next().unwrap(), Some(ms(t))), key(ms(t)));
            skipper.push((seq.next().unwrap(), None), other());
            skipper.push((seq.next().unwrap(), None), other());
            send(&mut skipper, &mut in_decoder);
        }
        skipper.end();
        send(&mut skipper, &mut in_decoder);
        while let Some(p) = in_decoder.pop_front() {
            if let Some(p) = p {
                show(p, &mut skipper);
            }
        }
        for d in skipper.finish() {
            job_tl.map(d as f64 / 1000.0);
        }
        (reference, sampled, skipper.passed_over)
    }

    #[test]
    fn key_frames_no_sample_takes_are_passed_over_and_the_samples_stay() {
        // Key frames every 0.48 s for 2 minutes, a sample every 1 s, 3 s, 0.25 s.
        let times: Vec<f64> = (0..250).map(|i| i as f64 * 0.48).collect();
        for every in [1.0, 3.0, 0.25] {
            for delay in [0, 1, 5] {
                let (want, got, passed) = run(&times, every, delay);
                assert_eq!(got, want, "every {every} delay {delay}");
                if every > 0.48 {
                    assert!(passed > 100, "every {every}: {passed} passed over");
                } else {
                    assert_eq!(passed, 0);
                }
            }
        }
    }

    #[test]
    fn clock_jumps_and_wraps_map_as_without_passing_over() {
        let mut times: Vec<f64> = (0..60).map(|i| i as f64 * 0.5).collect();
        times.extend((0..60).map(|i| 5000.0 + i as f64 * 0.5)); // TS splice
        let (want, got, passed) = run(&times, 2.0, 3);
        assert_eq!(got, want);
        assert!(passed > 50);
        // A jump back: passing over stops there.
        times.extend((0..60).map(|i| 2.0 + i as f64 * 0.5));
        let (want, got, _) = run(&times, 2.0, 3);
        assert_eq!(got, want);
    }

    #[test]
    fn key_frames_out_of_order_or_repeated_stop_passing_over_before_them() {
        for bump in [0.48, 1.2, 0.5] {
            let mut s = KeySkipper::new(1.0, 0.001, 0.0, Timeline::new(0.04, None));
            let times: Vec<i64> = (0..40)
                .map(|i| i * 480 + if i == 30 { (bump * 1000.0) as i64 } else { 0 })
                .collect();
            let (mut sent, mut all) = (Vec::new(), Vec::new());
            for &p in &times {
                s.push(p, key(p));
                while let Some((p, fed)) = s.next() {
                    all.push(p);
                    if fed {
                        sent.push(p);
                        s.output(Some(p));
                    }
                }
            }
            s.end();
            while let Some((p, _)) = s.next() {
                all.push(p);
                sent.push(p);
            }
            assert_eq!(all, times, "every packet once, in order");

            // Every key frame from the first not strictly between its neighbours on is decoded.
            assert!(sent.ends_with(&times[30..]), "bump {bump}: {sent:?}");
            assert!(s.passed_over > 5);
        }
    }

    #[test]
    fn a_decoder_that_loses_or_reorders_frames_stops_passing_over() {
        let mut s = KeySkipper::new(1.0, 0.001, 0.0, Timeline::new(0.04, None));
        let fed = |s: &mut KeySkipper<i64>, p: i64| {
            s.push(p, key(p));
            let mut sent = Vec::new();
            while let Some((p, f)) = s.next() {
                sent.push((p, f));
            }
            sent
        };
        for i in 0..9 {
            // Each key frame is decided when the next arrives; 8 are returned as sent first.
            let sent = fed(&mut s, i * 100);
            assert!(sent.iter().all(|(_, f)| *f), "not verified yet");
            if let Some((p, _)) = sent.first() {
                s.output(Some(*p));
            }
        }
        // 800 and 900 (not sampled) are passed over.
        assert_eq!(fed(&mut s, 900), vec![(800, false)]);
        assert_eq!(fed(&mut s, 1000), vec![(900, false)]);
        // 1000 (sampled at 1 s) is sent, returned as 1001: nothing more is passed over, and the
        // two passed over reach the timeline.
        assert_eq!(fed(&mut s, 1100), vec![(1000, true)]);
        assert_eq!(s.output(Some(1001)), vec![800, 900]);
        assert_eq!(fed(&mut s, 1200), vec![(1100, true), (1200, true)]);
        // A key frame that is not a restart point stops it too, as does a hidden one.
        for info in [
            KeyInfo {
                restart: false,
                ..key(0)
            },
            KeyInfo {
                hidden: true,
                ..key(0)
            },
        ] {
            let mut s = KeySkipper::new(1.0, 0.001, 0.0, Timeline::new(0.04, None));
            s.push(0, info);
            for i in 1..40 {
                s.push(i * 100, key(i * 100));
                while let Some((p, f)) = s.next() {
                    assert!(f);
                    s.output(Some(p));
                }
            }
        }
    }

    #[test]
    fn key_frames_passed_over_reach_the_timeline_in_order_even_when_the_decoder_loses_one() {
        // Sampling every 0.25 s, key frames every 0.1 s: most are passed over.
        let mut s = KeySkipper::new(0.25, 0.001, 0.0, Timeline::new(0.04, None));
        let keys: Vec<i64> = (0..60).map(|i| i * 100).collect();
        // The decoder returns each key frame sent 3 packets later, except the 14th, which it
        // loses (a decoding error); the timeline must see every other key timestamp, in order.
        let (mut sent, mut lost) = (0, None);
        let (mut in_decoder, mut seen) = (VecDeque::new(), Vec::new());
        let mut decode = |s: &mut KeySkipper<i64>, seen: &mut Vec<i64>, delay: usize| {
            while let Some((p, fed)) = s.next() {
                if fed {
                    sent += 1;
                    if sent == 14 {
                        lost = Some(p);
                    } else {
                        in_decoder.push_back(p);
                    }
                }
                while in_decoder.len() > delay {
                    let p = in_decoder.pop_front().unwrap();
                    seen.extend(s.output(Some(p)));
                    seen.push(p);
                }
            }
            while in_decoder.len() > delay {
                let p = in_decoder.pop_front().unwrap();
                seen.extend(s.output(Some(p)));
                seen.push(p);
            }
        };
        for &p in &keys {
            s.push(p, key(p));
            decode(&mut s, &mut seen, 3);
        }
        s.end();
        decode(&mut s, &mut seen, 0);
        seen.extend(s.finish());
        assert!(s.passed_over >= 3, "{}", s.passed_over);
        let want: Vec<i64> = keys.iter().copied().filter(|p| Some(*p) != lost).collect();
        assert_eq!(seen, want);
    }
}
