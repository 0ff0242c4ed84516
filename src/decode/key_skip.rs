//! `--sampling keyframe` without decoding key frames no sample point takes. The decoder decodes
//! only key frames there (it is told to discard the rest), each into one frame, in the order the
//! packets come; so a copy of the timeline and the sampler, fed the key packets' timestamps as
//! they are read, knows which key frames sampling will take, and the others need not be decoded
//! (with key frames every half second and a sample a second, half of the decoding). Their
//! timestamps still pass through the job's timeline in order, so its state, and with it every
//! sampled frame, index and timestamp, stays that of decoding every key frame.
//!
//! That holds while the decoder turns each key packet into one frame with the packet's timestamp,
//! in order; it is checked on every frame (`output`), and key frames are passed over only after
//! `VERIFIED_BEFORE_SKIPPING` frames agreed. Any disagreement, a key packet without a timestamp,
//! a hidden (pre-roll) key packet or a decoding error (`stop`) turns passing over off for the rest
//! of the file.

use std::collections::VecDeque;

use super::sampler::{Sampler, Timeline};

/// Key frames the decoder must have returned as expected before any is passed over.
const VERIFIED_BEFORE_SKIPPING: u64 = 8;

pub struct KeySkipper {
    enabled: bool,
    time_base: f64,
    origin: f64,
    /// The job's timeline and sampler as they will be after the key frames read so far.
    timeline: Timeline,
    sampler: Sampler,
    /// Timestamps of the key packets fed and not yet returned, in order.
    pending: VecDeque<i64>,
    /// Key packets passed over, in order, each after the fed packets before it: (pts, fed packets
    /// still pending when it was passed over).
    passed: VecDeque<i64>,
    /// For each passed-over pts, how many fed packets before it are still to be returned.
    waiting_for: VecDeque<usize>,
    verified: u64,
    pub passed_over: u64,
}

impl KeySkipper {
    /// A skipper for a stream whose key frames the job maps with `timeline` (a fresh copy of the
    /// job's) and samples every `every` seconds; packet timestamps are `pts × time_base − origin`.
    pub fn new(every: f64, time_base: f64, origin: f64, timeline: Timeline) -> KeySkipper {
        KeySkipper {
            enabled: every > 0.0 && time_base > 0.0,
            time_base,
            origin,
            timeline,
            sampler: Sampler::new(every),
            pending: VecDeque::new(),
            passed: VecDeque::new(),
            waiting_for: VecDeque::new(),
            verified: 0,
            passed_over: 0,
        }
    }

    /// Never passes anything over (`--decode-all`, raw streams).
    pub fn off(mut self) -> KeySkipper {
        self.enabled = false;
        self
    }

    /// Passing over stops for the rest of the file.
    pub fn stop(&mut self) {
        self.enabled = false;
    }

    /// A key packet is about to go to the decoder: whether to pass it over instead. `restart`:
    /// decoding starts afresh there (`RefSyntax::is_restart`: an IDR picture in H.264). FFmpeg's
    /// H.264 decoder returns key frames that are only recovery points out of order once others
    /// are left out, so a stream with such key frames is decoded key frame by key frame.
    pub fn pass_over(&mut self, pts: Option<i64>, hidden: bool, restart: bool) -> bool {
        if !self.enabled {
            return false;
        }
        let Some(p) = pts.filter(|_| !hidden && restart) else {
            self.stop();
            return false;
        };
        let t = self.timeline.map(p as f64 * self.time_base - self.origin);
        let taken = self.sampler.take(t);
        if taken || self.verified < VERIFIED_BEFORE_SKIPPING {
            self.pending.push_back(p);
            return false;
        }
        self.passed.push_back(p);
        self.waiting_for.push_back(self.pending.len());
        self.passed_over += 1;
        true
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
        // Passed over before this frame was fed: shown before it.
        let mut due = Vec::new();
        while self.waiting_for.front().is_some_and(|&n| n == 0) {
            self.waiting_for.pop_front();
            due.extend(self.passed.pop_front());
        }
        for n in &mut self.waiting_for {
            *n = n.saturating_sub(1);
        }
        // Those whose last earlier frame was this one come after it: returned on the next call.
        due
    }

    /// The stream is done: key frames passed over after the last frame returned.
    pub fn finish(&mut self) -> Vec<i64> {
        self.waiting_for.clear();
        self.passed.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Key frames at `times` (seconds, time base 1 ms) through a decoder that returns each fed
    /// one at once (`delay` 0) or `delay` packets later: the times the job samples, with and
    /// without passing over, and how many were passed over.
    fn run(times: &[f64], every: f64, delay: usize) -> (Vec<f64>, Vec<f64>, u64) {
        let reference = {
            let mut tl = Timeline::new(0.04, Some(60.0));
            let mut s = Sampler::new(every);
            times
                .iter()
                .map(|t| tl.map((t * 1000.0).round() / 1000.0))
                .filter(|t| s.take(*t))
                .collect::<Vec<f64>>()
        };
        let mut skipper = KeySkipper::new(every, 0.001, 0.0, Timeline::new(0.04, Some(60.0)));
        let (mut job_tl, mut job_s) = (Timeline::new(0.04, Some(60.0)), Sampler::new(every));
        let mut sampled = Vec::new();
        let mut in_decoder: VecDeque<i64> = VecDeque::new();
        let mut show = |p: i64, skipper: &mut KeySkipper, sampled: &mut Vec<f64>| {
            for d in skipper.output(Some(p)) {
                job_tl.map(d as f64 / 1000.0);
            }
            let t = job_tl.map(p as f64 / 1000.0);
            if job_s.take(t) {
                sampled.push(t);
            }
        };
        for t in times {
            let p = (t * 1000.0).round() as i64;
            if !skipper.pass_over(Some(p), false, true) {
                in_decoder.push_back(p);
            }
            while in_decoder.len() > delay {
                let p = in_decoder.pop_front().unwrap();
                show(p, &mut skipper, &mut sampled);
            }
        }
        while let Some(p) = in_decoder.pop_front() {
            show(p, &mut skipper, &mut sampled);
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
        times.extend((0..60).map(|i| 2.0 + i as f64 * 0.5)); // back
        let (want, got, passed) = run(&times, 2.0, 3);
        assert_eq!(got, want);
        assert!(passed > 50);
    }

    #[test]
    fn a_decoder_that_loses_or_reorders_frames_stops_passing_over() {
        let mut s = KeySkipper::new(1.0, 0.001, 0.0, Timeline::new(0.04, None));
        for i in 0..8 {
            assert!(!s.pass_over(Some(i * 100), false, true), "not verified yet");
            assert!(s.output(Some(i * 100)).is_empty());
        }
        assert!(
            s.pass_over(Some(800), false, true),
            "verified, and not sampled"
        );
        assert!(!s.pass_over(Some(1000), false, true), "sampled at 1 s");
        assert!(
            s.pass_over(Some(1500), false, true),
            "verified, and not sampled"
        );
        // The frame for 1000 comes back as 1001: nothing more is passed over; 1500 is still
        // handed to the timeline, after it.
        assert_eq!(s.output(Some(1001)), vec![800]);
        assert!(!s.pass_over(Some(1600), false, true));
        assert_eq!(s.finish(), vec![1500]);
        // A key packet without a timestamp stops it too.
        let mut s = KeySkipper::new(1.0, 0.001, 0.0, Timeline::new(0.04, None));
        assert!(!s.pass_over(None, false, true));
        for i in 0..30 {
            assert!(!s.pass_over(Some(i * 100), false, true));
            s.output(Some(i * 100));
        }
        // So does a key frame that is not a restart point.
        let mut s = KeySkipper::new(1.0, 0.001, 0.0, Timeline::new(0.04, None));
        assert!(!s.pass_over(Some(0), false, false));
        for i in 0..30 {
            assert!(!s.pass_over(Some(i * 100), false, true));
            s.output(Some(i * 100));
        }
        // So does a hidden one.
        let mut s = KeySkipper::new(1.0, 0.001, 0.0, Timeline::new(0.04, None));
        assert!(!s.pass_over(Some(0), true, true));
        for i in 0..30 {
            assert!(!s.pass_over(Some(i * 100), false, true));
            s.output(Some(i * 100));
        }
    }
}
