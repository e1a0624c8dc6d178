//! Progress of a long run on stderr, only when stderr is a terminal: one line rewritten in
//! place (`\r`) at most four times a second, with enrollments so far, the current rate,
//! failures and the elapsed time; ended with a newline. `testbed bench` and `testbed lab run`
//! both use it; their reports on stdout are unchanged.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often the line is rewritten.
const TICK: Duration = Duration::from_millis(250);
/// The window over which the current rate is measured.
const RATE_WINDOW: Duration = Duration::from_secs(2);

/// The counters a run updates as it goes.
#[derive(Debug, Default)]
pub struct Counters {
    /// Enrollments done so far.
    pub enrolled: AtomicUsize,
    /// Failures so far.
    pub failed: AtomicUsize,
}

/// A run's progress: its counters, and while stderr is a terminal a thread printing them.
pub struct Progress {
    counters: Arc<Counters>,
    printer: Option<Printer>,
}

struct Printer {
    stop: Arc<AtomicBool>,
    /// Held while the line is written, so that [`Progress::println`] can clear it first.
    line: Arc<Mutex<usize>>,
    handle: std::thread::JoinHandle<()>,
}

impl Progress {
    /// Show `counters` against `total` from now on; the line is printed only when stderr is a
    /// terminal.
    pub fn start(total: usize, counters: Arc<Counters>) -> Self {
        let printer = std::io::stderr()
            .is_terminal()
            .then(|| Printer::spawn(counters.clone(), total));
        Self { counters, printer }
    }

    /// Set both counters (for a run that polls rather than counts).
    pub fn set(&self, enrolled: usize, failed: usize) {
        self.counters.enrolled.store(enrolled, Ordering::Relaxed);
        self.counters.failed.store(failed, Ordering::Relaxed);
    }

    /// Print `text` on stdout without mixing it into the progress line (cleared first, rewritten
    /// at the next tick).
    pub fn println(&self, text: &str) {
        let guard = self.printer.as_ref().map(|p| {
            let mut width = p.line.lock().unwrap_or_else(PoisonError::into_inner);
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r{:width$}\r", "", width = *width);
            let _ = err.flush();
            *width = 0;
            width
        });
        println!("{text}");
        drop(guard);
    }

    /// Stop printing: the last line stays, ended with a newline.
    pub fn finish(mut self) {
        self.stop_printer();
    }

    fn stop_printer(&mut self) {
        if let Some(p) = self.printer.take() {
            p.stop.store(true, Ordering::Release);
            p.handle.thread().unpark();
            let _ = p.handle.join();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop_printer();
    }
}

impl Printer {
    fn spawn(counters: Arc<Counters>, total: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let line = Arc::new(Mutex::new(0usize));
        let handle = {
            let (stop, line) = (stop.clone(), line.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut window: VecDeque<(Instant, usize)> = VecDeque::new();
                loop {
                    let last = stop.load(Ordering::Acquire);
                    let now = Instant::now();
                    let enrolled = counters.enrolled.load(Ordering::Relaxed);
                    window.push_back((now, enrolled));
                    while window.len() > 2
                        && window
                            .get(1)
                            .is_some_and(|(t, _)| now.duration_since(*t) >= RATE_WINDOW)
                    {
                        window.pop_front();
                    }
                    let rate = match window.front() {
                        Some((t, n)) if now > *t => {
                            enrolled.saturating_sub(*n) as f64
                                / now.duration_since(*t).as_secs_f64()
                        }
                        _ => 0.0,
                    };
                    let text = line_text(
                        enrolled,
                        total,
                        counters.failed.load(Ordering::Relaxed),
                        rate,
                        start.elapsed(),
                    );
                    {
                        let mut width = line.lock().unwrap_or_else(PoisonError::into_inner);
                        let mut err = std::io::stderr().lock();
                        let pad = (*width).saturating_sub(text.len());
                        let _ = write!(err, "\r{text}{:pad$}", "");
                        if last {
                            let _ = writeln!(err);
                        }
                        let _ = err.flush();
                        *width = text.len();
                    }
                    if last {
                        break;
                    }
                    std::thread::park_timeout(TICK);
                }
            })
        };
        Self { stop, line, handle }
    }
}

/// The progress line: enrolled so far of `total`, the current rate, failures, elapsed time.
pub fn line_text(
    enrolled: usize,
    total: usize,
    failed: usize,
    rate: f64,
    elapsed: Duration,
) -> String {
    let s = elapsed.as_secs();
    let clock = if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    };
    format!("enrolled {enrolled}/{total}  {rate:.1}/s  failed {failed}  elapsed {clock}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_counts_rate_failures_and_elapsed() {
        assert_eq!(
            line_text(123, 1000, 2, 41.96, Duration::from_millis(72_900)),
            "enrolled 123/1000  42.0/s  failed 2  elapsed 1:12"
        );
        assert_eq!(
            line_text(0, 5, 0, 0.0, Duration::ZERO),
            "enrolled 0/5  0.0/s  failed 0  elapsed 0:00"
        );
        assert_eq!(
            line_text(7, 7, 0, 0.24, Duration::from_secs(3 * 3600 + 5 * 60 + 9)),
            "enrolled 7/7  0.2/s  failed 0  elapsed 3:05:09"
        );
    }

    #[test]
    fn counters_count_without_a_terminal() {
        let counters = Arc::new(Counters::default());
        let p = Progress::start(3, counters.clone());
        counters.enrolled.fetch_add(2, Ordering::Relaxed);
        p.set(3, 1);
        assert_eq!(counters.enrolled.load(Ordering::Relaxed), 3);
        assert_eq!(counters.failed.load(Ordering::Relaxed), 1);
        p.finish();
    }
}
