//! Progress while the job runs. On a terminal: an overall bar (inputs done of total, with ETA) and
//! one bar per active input (its position in media time, sampled frames per second, faces found).
//! Not on a terminal (batch jobs): a plain log line every `interval`. With `--quiet`: nothing.
//!
//! Log lines go through the bars (`MultiProgress::suspend`) so they never tear them.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// A writer for the log that keeps terminal progress bars intact.
pub struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match BARS.get() {
            Some(m) => m.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

enum Mode {
    Bars {
        overall: ProgressBar,
    },
    Log {
        interval: Duration,
        last: Mutex<Instant>,
    },
    Quiet,
}

pub struct Progress {
    mode: Mode,
    total: usize,
    started: Instant,
    done: std::sync::atomic::AtomicUsize,
}

impl Progress {
    pub fn new(total: usize, quiet: bool, interval: Duration) -> Progress {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let multi =
                BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
            let overall = multi.add(ProgressBar::new(total as u64));
            overall.set_style(
                ProgressStyle::with_template("{prefix:.bold} [{bar:30.cyan/blue}] {pos}/{len} inputs  {elapsed_precise} elapsed, ETA {eta_precise}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            overall.set_prefix("all");
            Mode::Bars { overall }
        } else {
            Mode::Log {
                interval,
                last: Mutex::new(Instant::now()),
            }
        };
        Progress {
            mode,
            total,
            started: Instant::now(),
            done: Default::default(),
        }
    }

    /// A progress handle that shows nothing (for `bench`).
    pub fn hidden() -> Progress {
        Progress::new(0, true, Duration::MAX)
    }

    pub fn start_input(&self, name: &str, duration: Option<f64>) -> InputProgress<'_> {
        let bar = match (&self.mode, BARS.get()) {
            (Mode::Bars { .. }, Some(multi)) => {
                let bar = multi.add(ProgressBar::new(
                    duration.map(|d| (d * 10.0).ceil() as u64).unwrap_or(0),
                ));
                let template = if duration.is_some() {
                    "  {prefix:30!} [{bar:30}] {msg}"
                } else {
                    "  {prefix:30!} {spinner} {msg}"
                };
                bar.set_style(
                    ProgressStyle::with_template(template)
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
                bar.set_prefix(name.to_string());
                Some(bar)
            }
            _ => None,
        };
        InputProgress {
            parent: self,
            bar,
            name: name.to_string(),
            duration,
            started: Instant::now(),
        }
    }

    /// Counts an input that needed no work (already done, or another worker's).
    pub fn finished_one(&self) {
        let done = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if let Mode::Bars { overall } = &self.mode {
            overall.set_position(done as u64);
        }
    }

    pub fn finish(&self) {
        if let Mode::Bars { overall } = &self.mode {
            overall.finish();
        }
    }
}

pub struct InputProgress<'a> {
    parent: &'a Progress,
    bar: Option<ProgressBar>,
    name: String,
    duration: Option<f64>,
    started: Instant,
}

impl InputProgress<'_> {
    /// After each batch: media time reached, sampled frames and faces so far.
    pub fn update(&self, media_time: f64, sampled: u64, faces: u64) {
        let rate = sampled as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        let position = match self.duration {
            Some(d) => format!(
                "{}/{} ({:.0} %)",
                clock(media_time),
                clock(d),
                100.0 * media_time / d.max(1e-9)
            ),
            None => clock(media_time),
        };
        match &self.parent.mode {
            Mode::Bars { .. } => {
                if let Some(bar) = &self.bar {
                    bar.set_position((media_time * 10.0) as u64);
                    bar.set_message(format!("{position}  {rate:.1} frames/s  {faces} faces"));
                }
            }
            Mode::Log { interval, last } => {
                let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                if last.elapsed() >= *interval {
                    *last = Instant::now();
                    let p = self.parent;
                    let done = p.done.load(std::sync::atomic::Ordering::Relaxed);
                    let eta = if done > 0 {
                        let per = p.started.elapsed().as_secs_f64() / done as f64;
                        format!(", ETA {}", clock(per * (p.total - done) as f64))
                    } else {
                        String::new()
                    };
                    tracing::info!(
                        "progress: {done}/{} inputs done{eta}; {} at {position}, {rate:.1} sampled frames/s, {faces} faces",
                        p.total,
                        self.name
                    );
                }
            }
            Mode::Quiet => {}
        }
    }
}

impl Drop for InputProgress<'_> {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            if let Some(multi) = BARS.get() {
                multi.remove(&bar);
            }
        }
        self.parent.finished_one();
    }
}

/// h:mm:ss
fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}
