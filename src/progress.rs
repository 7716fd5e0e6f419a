//! A one-line progress counter on standard error, shown only when it is a
//! terminal (and not silenced with `--quiet`).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Show no progress from now on (`--quiet`).
pub fn set_quiet() {
    QUIET.store(true, Ordering::Relaxed);
}

/// Counts steps of `total`, redrawing at most ten times a second.
#[derive(Debug)]
pub struct Progress {
    label: &'static str,
    unit: &'static str,
    total: usize,
    done: AtomicUsize,
    shown: bool,
    last: Mutex<Option<Instant>>,
}

impl Progress {
    /// A counter of `total` `unit`s (`files`, `commits`; 0 when the total
    /// is not known ahead) that draws on standard error if it is a terminal.
    pub fn new(label: &'static str, total: usize, unit: &'static str) -> Progress {
        Progress {
            label,
            unit,
            total,
            done: AtomicUsize::new(0),
            shown: std::io::stderr().is_terminal() && !QUIET.load(Ordering::Relaxed),
            last: Mutex::new(None),
        }
    }

    pub fn step(&self) {
        self.advance(1);
    }

    /// Is the counter drawn (standard error is a terminal, no --quiet)?
    pub fn visible(&self) -> bool {
        self.shown
    }

    /// Count `n` more steps done.
    pub fn advance(&self, n: usize) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if !self.shown {
            return;
        }
        let mut last = self.last.lock().expect("progress");
        let now = Instant::now();
        if last.is_some_and(|t| now - t < Duration::from_millis(100)) {
            return;
        }
        *last = Some(now);
        // A total of 0: not known ahead (a walk that discovers as it goes).
        let of = match self.total {
            0 => String::new(),
            total => format!("/{total}"),
        };
        let _ = write!(
            std::io::stderr().lock(),
            "\r{}: {done}{of} {}",
            self.label,
            self.unit
        );
    }

    /// Clear the line.
    pub fn finish(&self) {
        if self.shown && self.last.lock().expect("progress").is_some() {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }
}
