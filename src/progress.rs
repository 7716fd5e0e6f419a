//! A one-line progress counter on standard error, shown only when it is a
//! terminal and the work takes long enough to be worth showing.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts steps of `total`, redrawing at most ten times a second.
#[derive(Debug)]
pub struct Progress {
    label: &'static str,
    total: usize,
    done: AtomicUsize,
    shown: bool,
    last: Mutex<Option<Instant>>,
}

impl Progress {
    /// A counter that draws on standard error if it is a terminal.
    pub fn new(label: &'static str, total: usize) -> Progress {
        Progress {
            label,
            total,
            done: AtomicUsize::new(0),
            shown: std::io::stderr().is_terminal(),
            last: Mutex::new(None),
        }
    }

    pub fn step(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if !self.shown {
            return;
        }
        let mut last = self.last.lock().expect("progress");
        let now = Instant::now();
        if last.is_some_and(|t| now - t < Duration::from_millis(100)) {
            return;
        }
        *last = Some(now);
        let _ = write!(
            std::io::stderr().lock(),
            "\r{}: {done}/{} envelopes",
            self.label,
            self.total
        );
    }

    /// Clear the line.
    pub fn finish(&self) {
        if self.shown && self.last.lock().expect("progress").is_some() {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }
}
