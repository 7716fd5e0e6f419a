//! Reading Git's requests without a wake-up per packet.
//!
//! Git writes each request as several packets (`command=`, `pathname=`,
//! a flush, the content, a flush), one `write` each. A filter blocked in
//! `read` is woken by every one of them: six wake-ups per file, each a
//! cross-core interrupt that costs Git, in its `write`, as much as it costs
//! the filter. Where nothing else of ours wants a core, [`Eager`] watches
//! the pipe for up to [`WATCH`] before it sleeps: the packets of a request
//! arrive microseconds apart and find nobody to wake, and Git's only
//! wake-up of the filter is the first packet after a longer pause.
//!
//! The watch costs a core for at most [`WATCH`] per read, and is not kept
//! on one core (where it would take Git's turn) or while a helper thread
//! of the filter works (see [`super::helper_working`]): those threads run
//! in the idle scheduling class, and a watching main thread would starve
//! them. Nor is it kept where it does not pay: a read soon after the last
//! one (within [`BURST`]: the next packet of a request) always watches,
//! but the first read of a burst (the next request) watches only while
//! such watches find input. When Git's own work between two requests is
//! longer than the watch (`git add` deflating and writing each envelope),
//! they stop after [`MISSES`] in a row, and one in [`PROBE_EVERY`] then
//! tries again.

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

/// How long a read watches for input before it sleeps: longer than the gap
/// between two packets of one request (a few microseconds), shorter than
/// most of Git's own work between two requests.
pub const WATCH: Duration = Duration::from_micros(30);
/// A read this soon after the last one continues a burst of input.
const BURST: Duration = Duration::from_micros(5);
/// First reads of a burst stop watching after this many watches in a row
/// found nothing...
const MISSES: u32 = 4;
/// ...and then watch once in this many, to learn whether they would pay.
const PROBE_EVERY: u32 = 16;

/// A reader of a pipe (or anything `poll` can watch) that watches for
/// input before it blocks; see the module documentation.
#[derive(Debug)]
pub struct Eager<F> {
    input: F,
    /// More than one core: the watch does not take Git's.
    cores: bool,
    /// When the last read that returned input returned.
    last: Option<Instant>,
    /// Whether the first reads of bursts watch.
    starts: Learning,
}

/// Whether the first read of a burst watches: while such watches find
/// input, then one in [`PROBE_EVERY`] after [`MISSES`] found nothing.
#[derive(Debug, Default)]
struct Learning {
    misses: u32,
    skipped: u32,
}

impl Learning {
    fn should_watch(&mut self) -> bool {
        if self.misses < MISSES {
            return true;
        }
        self.skipped += 1;
        if self.skipped < PROBE_EVERY {
            return false;
        }
        self.skipped = 0;
        true
    }

    fn watched(&mut self, found: bool) {
        self.misses = if found {
            0
        } else {
            self.misses.saturating_add(1)
        };
    }
}

impl<F: AsFd> Eager<F> {
    pub fn new(input: F) -> Eager<F> {
        let cores = super::cores().is_some_and(|n| n >= 2);
        Eager {
            input,
            cores,
            last: None,
            starts: Learning::default(),
        }
    }

    /// Watch for input for up to `watch`: true when there is some (or the
    /// other end is closed, or the watch fails: a read then tells).
    fn watch(&self, watch: Duration) -> bool {
        let start = Instant::now();
        loop {
            let mut fds = [PollFd::new(&self.input, PollFlags::IN)];
            if poll(&mut fds, Some(&Timespec::default())).map_or(true, |n| n > 0) {
                return true;
            }
            if start.elapsed() >= watch {
                return false;
            }
            std::hint::spin_loop();
        }
    }
}

impl<F: AsFd> Read for Eager<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cores && !super::helper_working() {
            let in_burst = self.last.is_some_and(|last| last.elapsed() < BURST);
            if in_burst {
                self.watch(WATCH);
            } else if self.starts.should_watch() {
                let found = self.watch(WATCH);
                self.starts.watched(found);
            }
        }
        loop {
            match rustix::io::read(&self.input, &mut *buf) {
                Ok(n) => {
                    self.last = (n > 0).then(Instant::now);
                    return Ok(n);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Input that arrives in pieces, some within the watch and some long
    /// after it, is read whole and in order; a closed pipe reads as the end.
    #[test]
    fn pieces_are_read_whole_whenever_they_come() {
        let (reader, writer) = std::io::pipe().unwrap();
        let writer = std::thread::spawn(move || {
            let mut writer = writer;
            for (i, pause) in [0, 5, 0, 2000, 10, 40_000].into_iter().enumerate() {
                std::thread::sleep(Duration::from_micros(pause));
                writer.write_all(format!("piece {i};").as_bytes()).unwrap();
            }
            // Dropped: the pipe closes.
        });
        let mut eager = Eager::new(reader);
        let mut all = String::new();
        eager.read_to_string(&mut all).unwrap();
        writer.join().unwrap();
        assert_eq!(all, "piece 0;piece 1;piece 2;piece 3;piece 4;piece 5;");
    }

    /// First reads of bursts watch while it pays: they stop after MISSES
    /// watches in a row found nothing, probe one in PROBE_EVERY, and go on
    /// once a probe finds input.
    #[test]
    fn first_reads_watch_while_it_pays() {
        let mut starts = Learning::default();
        for _ in 0..10 {
            assert!(starts.should_watch());
            starts.watched(true);
        }
        for _ in 0..MISSES {
            assert!(starts.should_watch());
            starts.watched(false);
        }
        // Out of patience: one probe in PROBE_EVERY.
        for _ in 0..3 {
            let watched = (0..PROBE_EVERY).filter(|_| starts.should_watch()).count();
            assert_eq!(watched, 1);
            starts.watched(false);
        }
        // A probe that finds input: every first read watches again.
        while !starts.should_watch() {}
        starts.watched(true);
        for _ in 0..MISSES {
            assert!(starts.should_watch());
            starts.watched(true);
        }
        // One miss among hits changes nothing.
        starts.watched(false);
        assert!(starts.should_watch());
    }

    /// The watch gives up after its time when nothing comes, and returns
    /// at once when input is there or the writer has gone.
    #[test]
    fn the_watch_is_bounded() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let eager = Eager::new(reader);
        let started = Instant::now();
        assert!(!eager.watch(Duration::from_millis(5)));
        assert!(started.elapsed() >= Duration::from_millis(5));
        writer.write_all(b"x").unwrap();
        assert!(eager.watch(Duration::from_secs(60)));
        drop(writer);
        let mut eager = eager;
        let mut byte = [0; 1];
        assert_eq!(eager.read(&mut byte).unwrap(), 1);
        let started = Instant::now();
        assert!(eager.watch(Duration::from_secs(60)), "a closed pipe");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(eager.read(&mut byte).unwrap(), 0);
    }
}
