//! Exact sampling without decoding every frame. Packets are held back one GOP (a key frame and
//! the packets up to the next one) at a time; the frames that sampling will take are worked out
//! from the packets' timestamps (a copy of the sampler, fed in presentation order), and the
//! decoder gets only what those frames need:
//! - pictures nothing refers to (`bitstream`: H.264 nal_ref_idc 0, MPEG-1/2/4 B-pictures) that
//!   are not taken are left out anywhere: nothing else changes without them;
//! - references after the last frame taken in a GOP (in decode order: a frame's references come
//!   before it) are left out too, and all of a GOP where nothing is taken, when decoding can
//!   start again cleanly at the next key frame (below). The decoder is then drained and flushed
//!   and resumes at that key frame as after a seek.
//!
//! The sampled frames, their indices and timestamps stay exactly those of decoding everything;
//! only `frames_decoded` changes. Frames left out still count in the presentation index: each is
//! counted when the decoder returns the first frame shown after it (`dropped_shown`), and their
//! timestamps still pass through the timeline (its MPEG-TS splice detection compares neighbours).
//!
//! Resuming at the next key frame after a flush gives the frames of decoding straight through
//! only when nothing after it refers back to what was left out and the decoder shows everything
//! after it, so references are left out only when:
//! - the next GOP has no leading pictures (frames shown before its key frame; they refer to the
//!   GOP before: an open GOP), or its leading pictures are references to none (they go too);
//! - that key frame is a restart point (`RefSyntax::is_restart`: in H.264 an IDR picture; after
//!   an I-picture that is only a recovery point FFmpeg drops the frames decoded before the
//!   recovery point was shown when drained);
//! - every packet has a timestamp and timestamps do not jump back or far ahead between GOPs (the
//!   timeline's discontinuity handling would move the frames after the jump);
//! - the decoder has been seen to turn each packet into one frame with that packet's timestamp,
//!   in presentation order (`OutputCheck`: not so for field-coded interlaced video, which is then
//!   decoded in full). The first GOP is always decoded whole for this.
//!
//! Any doubt means the whole GOP is decoded; a broken check turns skipping off for the rest of
//! the file.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use super::sampler::Sampler;

/// Packets held back at most; a longer GOP is decoded as it arrives, and nothing more is
/// skipped in the file.
const MAX_HELD: usize = 1500;
/// Frames the decoder must have returned with their packets' timestamps before packets are
/// dropped.
const VERIFIED_BEFORE_SKIPPING: u64 = 8;
/// A jump forward between frames longer than this may be a clock splice that the timeline undoes.
const MAX_GAP: f64 = 10.0;
/// How far (seconds) a packet's timestamp may lie behind the newest before it in decode order
/// (B-frames); further is a jump of the clock.
const MAX_REORDER: f64 = 2.0;

/// One packet of the video stream as the demuxer gave it.
pub struct Packet<P> {
    pub pts: Option<i64>,
    pub key: bool,
    /// The container marks it to be decoded but not shown (edit-list pre-roll).
    pub hidden: bool,
    /// Whether other pictures may refer to this one (`bitstream`; `None`: not known, so yes).
    pub reference: Option<bool>,
    /// A key frame where decoding may start again after a flush (`RefSyntax::is_restart`).
    pub restart: bool,
    pub payload: P,
}

/// What to do next with the decoder.
pub enum Step<P> {
    /// Send this packet.
    Feed(P),
    /// Send end-of-stream, take every frame still inside, flush, then `drained()`.
    Drain,
    /// Pass this packet over: its frame counts as shown but not decoded.
    Drop(P),
}

/// Whether the decoder returns one frame per packet with the packet's timestamp, in presentation
/// order: every returned timestamp must be one fed and not yet returned, with none older left.
#[derive(Default)]
struct OutputCheck {
    pending: BTreeMap<i64, u32>,
    verified: u64,
    broken: bool,
}

impl OutputCheck {
    fn fed(&mut self, pts: Option<i64>) {
        match pts {
            Some(p) => *self.pending.entry(p).or_default() += 1,
            None => self.broken = true,
        }
    }

    fn output(&mut self, pts: Option<i64>) {
        let Some(p) = pts else {
            self.broken = true;
            return;
        };
        let older_left = self.pending.range(..p).next().is_some();
        match self.pending.get_mut(&p) {
            Some(n) if !older_left => {
                *n -= 1;
                if *n == 0 {
                    self.pending.remove(&p);
                }
                self.verified += 1;
            }
            _ => self.broken = true,
        }
    }

    fn drained(&mut self) {
        if !self.pending.is_empty() {
            self.broken = true;
        }
    }
}

/// A packet held back, and whether it is already known to go (a leading picture of a GOP
/// whose predecessor lost packets).
struct Held<P> {
    packet: Packet<P>,
    drop: bool,
}

impl<P> std::ops::Deref for Held<P> {
    type Target = Packet<P>;
    fn deref(&self) -> &Packet<P> {
        &self.packet
    }
}

/// Which of a GOP's packets the decoder gets.
#[derive(Debug, PartialEq)]
enum Plan {
    All,
    /// One flag per packet, in decode order.
    Only(Vec<bool>),
}

/// Decides, GOP by GOP, which packets the decoder gets (see the module documentation).
pub struct GopSkipper<P> {
    time_base: f64,
    origin: f64,
    enabled: bool,
    /// The job's sampler as it will be after the frames released so far.
    sampler: Sampler,
    held: VecDeque<Held<P>>,
    ready: VecDeque<Step<P>>,
    /// Latest timestamp (seconds) of everything released so far.
    before: f64,
    fed_since_drain: bool,
    ended: bool,
    check: OutputCheck,
    /// Timestamps of dropped packets not yet passed in presentation order.
    dropped: BinaryHeap<Reverse<i64>>,
    dropped_shown: u64,
    pub frames_dropped: u64,
    pub gops_skipped: u64,
}

impl<P> GopSkipper<P> {
    /// `every`: the sampling period; packet timestamps are `pts × time_base − origin` seconds
    /// (computed as the decoder side computes them, so the copy of the sampler sees the same
    /// numbers).
    pub fn new(every: f64, time_base: f64, origin: f64) -> Self {
        GopSkipper {
            time_base,
            origin,
            enabled: every > 0.0 && time_base > 0.0,
            sampler: Sampler::new(every),
            held: VecDeque::new(),
            ready: VecDeque::new(),
            before: f64::NEG_INFINITY,
            fed_since_drain: false,
            ended: false,
            check: OutputCheck::default(),
            dropped: BinaryHeap::new(),
            dropped_shown: 0,
            frames_dropped: 0,
            gops_skipped: 0,
        }
    }

    /// Turns skipping off: every packet is fed (`--decode-all`).
    pub fn decode_all(mut self) -> Self {
        self.enabled = false;
        self
    }

    /// Whether packets may still be dropped in this file.
    pub fn active(&self) -> bool {
        self.enabled && !self.check.broken
    }

    /// Turns skipping off for the rest of the file (also when the stream shows damage: a packet
    /// the decoder can make nothing of would still count as a frame if passed over).
    pub fn stop(&mut self) {
        self.enabled = false;
        self.check.pending.clear();
    }

    fn seconds(&self, pts: i64) -> f64 {
        pts as f64 * self.time_base - self.origin
    }

    /// The next packet of the stream.
    pub fn push(&mut self, packet: Packet<P>) {
        let held = Held {
            packet,
            drop: false,
        };
        if !self.active() {
            self.flush_held();
            self.release(held);
            return;
        }
        self.held.push_back(held);
        self.decide();
    }

    /// The stream has ended.
    pub fn end(&mut self) {
        self.ended = true;
        self.decide();
        self.flush_held();
    }

    /// Whether `end` was called.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// What to do next; `None`: push more packets (or the stream is done).
    pub fn next(&mut self) -> Option<Step<P>> {
        self.ready.pop_front()
    }

    /// The decoder returned a frame with this timestamp; the dropped frames shown before it
    /// are counted, and their timestamps returned in presentation order (the timeline must see
    /// them: MPEG-TS splice detection compares neighbouring frames).
    pub fn output(&mut self, pts: Option<i64>) -> Vec<i64> {
        if self.active() {
            self.check.output(pts);
            if self.check.broken {
                self.check.pending.clear();
            }
        }
        let mut passed = Vec::new();
        if let Some(p) = pts {
            while let Some(Reverse(d)) = self.dropped.peek().copied().filter(|Reverse(d)| *d < p) {
                self.dropped.pop();
                self.dropped_shown += 1;
                passed.push(d);
            }
        }
        passed
    }

    /// The stream is done: the timestamps of dropped frames shown after the last frame returned,
    /// in presentation order (they are counted as shown).
    pub fn finish(&mut self) -> Vec<i64> {
        let mut rest = Vec::with_capacity(self.dropped.len());
        while let Some(Reverse(d)) = self.dropped.pop() {
            self.dropped_shown += 1;
            rest.push(d);
        }
        rest
    }

    /// Dropped frames shown before the frame last returned: what its presentation index adds to
    /// the frames decoded.
    pub fn dropped_shown(&self) -> u64 {
        self.dropped_shown
    }

    /// The decoder has been drained and flushed.
    pub fn drained(&mut self) {
        if self.active() {
            self.check.drained();
        }
    }

    fn release(&mut self, h: Held<P>) {
        if let Some(p) = h.pts {
            self.before = self.before.max(self.seconds(p));
        }
        if h.drop {
            self.frames_dropped += 1;
            match h.pts {
                Some(p) => self.dropped.push(Reverse(p)),
                None => self.dropped_shown += 1,
            }
            self.ready.push_back(Step::Drop(h.packet.payload));
            return;
        }
        if !h.hidden && self.active() {
            self.check.fed(h.pts);
        }
        self.fed_since_drain = true;
        self.ready.push_back(Step::Feed(h.packet.payload));
    }

    fn flush_held(&mut self) {
        while let Some(h) = self.held.pop_front() {
            self.release(h);
        }
    }

    fn drain_decoder(&mut self) {
        if self.fed_since_drain {
            self.ready.push_back(Step::Drain);
            self.fed_since_drain = false;
        }
    }

    /// Settles every complete GOP at the front of `held`.
    fn decide(&mut self) {
        loop {
            let next_key = self.held.iter().skip(1).position(|h| h.key).map(|i| i + 1);
            let Some(end) = next_key.or(self.ended.then_some(self.held.len())) else {
                if self.held.len() >= MAX_HELD {
                    self.stop(); // no GOP structure to use
                    self.flush_held();
                }
                return;
            };
            if end == 0 {
                return;
            }
            let (plan, leading) = match self.leading_pictures(end) {
                Some(leading) => (self.plan(end, leading.clone()), leading),
                None if self.held.len() < MAX_HELD => return, // wait for the next packets
                None => {
                    self.stop();
                    (Plan::All, end..end)
                }
            };
            let gop: Vec<Held<P>> = self.held.drain(..end).collect();
            let feed = match plan {
                Plan::All => vec![true; end],
                Plan::Only(feed) => feed,
            };
            if !feed.contains(&true) {
                self.gops_skipped += 1;
            }
            let mut lost_reference = false;
            for (mut h, fed) in gop.into_iter().zip(feed) {
                lost_reference |= !fed && !h.drop && h.reference != Some(false);
                h.drop |= !fed;
                self.release(h);
            }
            if lost_reference {
                // Decoding goes on at the next key frame as after a seek.
                self.drain_decoder();
                // The next GOP's leading pictures refer to what was dropped: they go with it.
                for i in leading.start - end..leading.end - end {
                    self.held[i].drop = true;
                    if let Some(p) = self.held[i].pts {
                        self.before = self.before.max(self.seconds(p));
                    }
                }
            }
        }
    }

    /// The next GOP's leading pictures (after its key frame `held[end]` in decode order, before it
    /// in presentation order); `None` while packets that could still be leading are missing.
    fn leading_pictures(&self, end: usize) -> Option<std::ops::Range<usize>> {
        let Some(key) = self.held.get(end) else {
            return Some(end..end);
        };
        let mut last = end + 1;
        while let Some(h) = self.held.get(last) {
            let leading = !h.key && matches!((h.pts, key.pts), (Some(p), Some(k)) if p < k);
            if !leading {
                return Some(end + 1..last);
            }
            last += 1;
        }
        self.ended.then_some(end + 1..last)
    }

    /// Whether the timestamps of `held[..end]` (`own`: sorted) and the packets held after it go on
    /// from what was released as a continuous clock would: no step back, no gap over `MAX_GAP`
    /// between frames shown one after the other, nothing of the next GOP shown before the end of
    /// this one, no packet far behind those decoded before it (a jump back inside a GOP).
    fn timestamps_continue(&self, end: usize, own: &[(f64, usize)]) -> bool {
        let (Some(&(lo, _)), Some(&(hi, _))) = (own.first(), own.last()) else {
            return true;
        };
        let step = |from: f64, to: f64| !from.is_finite() || (to > from && to - from <= MAX_GAP);
        let later = self
            .held
            .range(end..)
            .filter(|h| !h.drop)
            .filter_map(|h| h.pts.map(|p| self.seconds(p)))
            .fold(f64::INFINITY, f64::min);
        let mut newest = f64::NEG_INFINITY;
        let in_decode_order = self.held.iter().filter_map(|h| h.pts).all(|p| {
            let t = self.seconds(p);
            newest = newest.max(t);
            t >= newest - MAX_REORDER
        });
        step(self.before, lo)
            && own.windows(2).all(|w| step(w[0].0, w[1].0))
            && (later == f64::INFINITY || step(hi, later))
            && in_decode_order
    }

    /// How much of `held[..end]` the decoder gets (`leading`: the next GOP's leading pictures).
    /// Advances the copy of the sampler past the GOP's frames.
    fn plan(&mut self, end: usize, leading: std::ops::Range<usize>) -> Plan {
        if !self.active() {
            return Plan::All;
        }
        // (time, decode position) of the frames shown; leading pictures have no position here.
        let mut own = Vec::with_capacity(end);
        let mut next = Vec::with_capacity(leading.len());
        for (i, h) in self.held.iter().enumerate().take(leading.end.max(end)) {
            let Some(p) = h.pts else {
                // A frame without a timestamp is placed one frame after the one shown before
                // it: the sampler copy cannot follow.
                self.stop();
                return Plan::All;
            };
            if h.drop || h.hidden || (i >= end && !leading.contains(&i)) {
                continue;
            }
            let t = self.seconds(p);
            if i < end {
                own.push((t, i));
            } else {
                next.push(t);
            }
        }
        own.sort_by(|a, b| a.0.total_cmp(&b.0));
        next.sort_by(f64::total_cmp);
        if !self.timestamps_continue(end, &own) {
            // The timeline will move the frames after a jump by where the frames before it are;
            // the sampler copy cannot follow: decode everything from here.
            self.stop();
            return Plan::All;
        }
        let mut sampler = self.sampler.clone();
        let taken: Vec<usize> = own
            .iter()
            .filter(|(t, _)| sampler.take(*t))
            .map(|&(_, i)| i)
            .collect();
        self.sampler = sampler.clone();
        let leading_taken = next.iter().any(|t| sampler.take(*t));
        // A frame decoded but never shown (pre-roll) has no place to be counted in if dropped.
        let hidden = self.held.range(..end).any(|h| h.hidden);
        if leading_taken || hidden || self.check.verified < VERIFIED_BEFORE_SKIPPING {
            return Plan::All;
        }
        // References after the last frame taken may go only if decoding can start again at the
        // next key frame and nothing in the next GOP refers back to them: its leading pictures
        // (if any) are references to none.
        let clean = self.held.get(end).is_none_or(|k| k.restart)
            && self.held.range(leading).all(|h| h.reference == Some(false));
        let last = taken.iter().max().copied();
        let feed = (0..end)
            .map(|i| {
                let needed_reference = self.held[i].reference != Some(false)
                    && (last.is_some_and(|l| i <= l) || !clean);
                taken.contains(&i) || needed_reference
            })
            .collect::<Vec<bool>>();
        if feed.iter().all(|f| *f) {
            Plan::All
        } else {
            Plan::Only(feed)
        }
    }
}

#[cfg(test)]
mod tests;
