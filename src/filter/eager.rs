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
//! them.

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};

/// How long a read watches for input before it sleeps: longer than the gap
/// between two packets of one request (a few microseconds), shorter than
/// most of Git's own work between two requests.
pub const WATCH: Duration = Duration::from_micros(30);

/// A reader of a pipe (or anything `poll` can watch) that watches for
/// input before it blocks; see the module documentation.
#[derive(Debug)]
pub struct Eager<F> {
    input: F,
    /// More than one core: the watch does not take Git's.
    cores: bool,
}

impl<F: AsFd> Eager<F> {
    pub fn new(input: F) -> Eager<F> {
        let cores = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
        Eager { input, cores }
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
            self.watch(WATCH);
        }
        loop {
            match rustix::io::read(&self.input, &mut *buf) {
                Ok(n) => return Ok(n),
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
