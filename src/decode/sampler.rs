//! Sampling by timestamp: with a period S, sample k (k = 0, 1, 2, …) is the first frame, in
//! presentation order, whose timestamp is ≥ k·S. A frame that satisfies several k at once (a gap in
//! the stream) is taken once, and the next k is the first one past its timestamp.

/// Tolerance for timestamps that land exactly on k·S but carry rounding from the time base.
const EPS: f64 = 1e-9;

#[derive(Debug, Clone)]
pub struct Sampler {
    every: f64,
    next_k: u64,
}

impl Sampler {
    pub fn new(every: f64) -> Sampler {
        Sampler { every, next_k: 0 }
    }

    /// The time of the next sample point.
    pub fn next_time(&self) -> f64 {
        self.next_k as f64 * self.every
    }

    /// Whether the frame at `t` seconds is sampled; advances past it when it is.
    pub fn take(&mut self, t: f64) -> bool {
        if t + EPS < self.next_time() {
            return false;
        }
        self.next_k = ((t + EPS) / self.every).floor() as u64 + 1;
        true
    }
}

/// Turns raw stream timestamps into seconds that never go backwards: a jump back (an MPEG-TS
/// discontinuity or wrap that the demuxer did not undo) continues one frame after the previous
/// timestamp, and later timestamps keep that offset. Jumps forward are kept (a gap in a recording
/// is real time) unless `max_forward_jump` is set: MPEG-TS broadcast captures are continuous in
/// real time, so a jump of more than that is a splice of the encoder's clock, not a gap.
#[derive(Debug, Clone)]
pub struct Timeline {
    frame_duration: f64,
    max_forward_jump: Option<f64>,
    offset: f64,
    last: Option<f64>,
    pub discontinuities: u64,
}

impl Timeline {
    pub fn new(frame_duration: f64, max_forward_jump: Option<f64>) -> Timeline {
        Timeline {
            frame_duration,
            max_forward_jump,
            offset: 0.0,
            last: None,
            discontinuities: 0,
        }
    }

    pub fn map(&mut self, raw_seconds: f64) -> f64 {
        let t = raw_seconds + self.offset;
        let t = match self.last {
            Some(last)
                if t < last - 1e-6 || self.max_forward_jump.is_some_and(|m| t > last + m) =>
            {
                self.discontinuities += 1;
                let fixed = last + self.frame_duration;
                self.offset += fixed - t;
                fixed
            }
            _ => t,
        };
        self.last = Some(t);
        t
    }

    /// Records a time that is already on the corrected timeline (not a raw stream timestamp).
    pub fn map_corrected(&mut self, t: f64) -> f64 {
        self.last = Some(t);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_per_second_at_25_fps() {
        let mut s = Sampler::new(1.0);
        let picked: Vec<usize> = (0..101).filter(|i| s.take(*i as f64 / 25.0)).collect();
        assert_eq!(picked, vec![0, 25, 50, 75, 100]);
    }

    #[test]
    fn ntsc_rate_takes_the_first_frame_at_or_after_each_second() {
        let mut s = Sampler::new(1.0);
        let fps = 30000.0 / 1001.0;
        let picked: Vec<usize> = (0..100).filter(|i| s.take(*i as f64 / fps)).collect();
        // frame 30 is at 1.001 s, frame 60 at 2.002 s, frame 90 at 3.003 s
        assert_eq!(picked, vec![0, 30, 60, 90]);
    }

    #[test]
    fn gaps_are_sampled_once() {
        let mut s = Sampler::new(1.0);
        let times = [0.0, 0.5, 3.7, 3.9, 4.0, 4.2];
        let picked: Vec<f64> = times.iter().copied().filter(|t| s.take(*t)).collect();
        assert_eq!(picked, vec![0.0, 3.7, 4.0]);
    }

    #[test]
    fn variable_frame_rate_uses_timestamps() {
        let mut s = Sampler::new(0.5);
        let times = [0.0, 0.1, 0.45, 0.52, 0.9, 1.0, 1.6];
        let picked: Vec<f64> = times.iter().copied().filter(|t| s.take(*t)).collect();
        assert_eq!(picked, vec![0.0, 0.52, 1.0, 1.6]);
    }

    #[test]
    fn timeline_unwraps_backward_jumps() {
        let mut tl = Timeline::new(0.04, None);
        let raw = [10.0, 10.04, 10.08, 0.0, 0.04, 0.08];
        let mapped: Vec<f64> = raw.iter().map(|t| tl.map(*t)).collect();
        let want = [10.0, 10.04, 10.08, 10.12, 10.16, 10.2];
        for (m, w) in mapped.iter().zip(want) {
            assert!((m - w).abs() < 1e-9, "{mapped:?}");
        }
        assert_eq!(tl.discontinuities, 1);
    }

    #[test]
    fn forward_jumps_are_kept_unless_limited() {
        let mut kept = Timeline::new(0.04, None);
        assert_eq!([0.0, 0.04, 500.0].map(|t| kept.map(t)), [0.0, 0.04, 500.0]);
        let mut spliced = Timeline::new(0.04, Some(60.0));
        let got = [0.0, 0.04, 500.0, 500.04].map(|t| spliced.map(t));
        assert!(
            (got[2] - 0.08).abs() < 1e-9 && (got[3] - 0.12).abs() < 1e-9,
            "{got:?}"
        );
    }
}
