//! Git's long-running filter protocol, version 2 (gitattributes(5),
//! "Long Running Filter Process"): handshake, then `clean` and `smudge`
//! requests until Git closes our standard input. Only protocol goes to
//! stdout; messages go to stderr.

use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use super::pktline;
use super::{open_work, Filter, Opened, Prepared, Smudged, Work};
use crate::keys::KeyProvider;
use crate::repo::Oid;

fn protocol_error(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

fn expect_list(r: &mut impl Read, expected: &[&str], what: &str) -> io::Result<Vec<String>> {
    let lines = pktline::read_text_list(r)?
        .ok_or_else(|| protocol_error(format!("git closed the pipe during {what}")))?;
    for want in expected {
        if !lines.iter().any(|l| l == want) {
            return Err(protocol_error(format!(
                "{what}: git did not send {want:?} (got {lines:?})"
            )));
        }
    }
    Ok(lines)
}

/// Smudges deferred with Git's `delay` capability, opened by worker
/// threads (one per core) while the main thread keeps talking to Git.
struct Pool {
    jobs: Option<mpsc::Sender<Work>>,
    results: mpsc::Receiver<(Work, Opened)>,
    workers: Vec<thread::JoinHandle<()>>,
    pending: usize,
}

impl Pool {
    fn start(keys: Arc<dyn KeyProvider>) -> Pool {
        let threads = thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 8);
        let (job_tx, job_rx) = mpsc::channel::<Work>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (result_tx, results) = mpsc::channel();
        let workers = (0..threads)
            .map(|_| {
                let (jobs, results, keys) =
                    (Arc::clone(&job_rx), result_tx.clone(), Arc::clone(&keys));
                thread::spawn(move || loop {
                    let next = jobs.lock().map(|rx| rx.recv());
                    let Ok(Ok(mut work)) = next else { return };
                    let opened = open_work(keys.as_ref(), &mut work);
                    if results.send((work, opened)).is_err() {
                        return;
                    }
                })
            })
            .collect();
        Pool {
            jobs: Some(job_tx),
            results,
            workers,
            pending: 0,
        }
    }

    fn submit(&mut self, work: Work) {
        if let Some(jobs) = &self.jobs {
            if jobs.send(work).is_ok() {
                self.pending += 1;
            }
        }
    }

    /// Every finished job, waiting for at least one if any are pending.
    fn ready(&mut self) -> Vec<(Work, Opened)> {
        let mut done = Vec::new();
        if self.pending == 0 {
            return done;
        }
        if let Ok(first) = self.results.recv() {
            done.push(first);
        }
        done.extend(self.results.try_iter());
        self.pending -= done.len();
        done
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs.take();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn respond(w: &mut impl Write, result: Result<Vec<u8>, String>) -> io::Result<()> {
    match result {
        Ok(bytes) => {
            pktline::write_text(w, "status=success")?;
            pktline::write_flush(w)?;
            pktline::write_content(w, &bytes)?;
            drop(bytes);
            // An empty list keeps "status=success".
            pktline::write_flush(w)?;
        }
        Err(message) => {
            eprintln!("git-seal: error: {message}");
            pktline::write_text(w, "status=error")?;
            pktline::write_flush(w)?;
        }
    }
    w.flush()
}

fn smudged(s: Smudged) -> Result<Vec<u8>, String> {
    if let Some(error) = s.error {
        eprintln!("git-seal: error: {error}");
    }
    Ok(s.bytes)
}

/// Serve one Git command's worth of filter requests.
pub fn serve(input: impl Read, output: impl Write, filter: &mut Filter) -> io::Result<()> {
    let mut r = BufReader::with_capacity(1 << 16, input);
    let mut w = BufWriter::with_capacity(1 << 16, output);

    expect_list(&mut r, &["git-filter-client", "version=2"], "handshake")?;
    pktline::write_text(&mut w, "git-filter-server")?;
    pktline::write_text(&mut w, "version=2")?;
    pktline::write_flush(&mut w)?;
    w.flush()?;
    let offered = expect_list(&mut r, &[], "capability negotiation")?;
    for cap in ["capability=clean", "capability=smudge", "capability=delay"] {
        if offered.iter().any(|c| c == cap) {
            pktline::write_text(&mut w, cap)?;
        }
    }
    pktline::write_flush(&mut w)?;
    w.flush()?;

    let mut pool: Option<Pool> = None;
    let mut delivered: HashMap<String, Smudged> = HashMap::new();
    while let Some(headers) = pktline::read_text_list(&mut r)? {
        let value = |key: &str| {
            headers
                .iter()
                .find_map(|h| h.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        };
        let command = value("command").unwrap_or_default().to_owned();
        if command == "list_available_blobs" {
            let ready = pool.as_mut().map(Pool::ready).unwrap_or_default();
            for (work, opened) in ready {
                let path = work.path.clone();
                pktline::write_text(&mut w, &format!("pathname={path}"))?;
                delivered.insert(path, filter.complete_smudge(work, opened));
            }
            pktline::write_flush(&mut w)?;
            pktline::write_text(&mut w, "status=success")?;
            pktline::write_flush(&mut w)?;
            w.flush()?;
            continue;
        }
        let path = value("pathname").unwrap_or_default().to_owned();
        let blob = value("blob").and_then(|b| Oid::from_str(b).ok());
        let can_delay = value("can-delay") == Some("1");
        let mut content = Vec::new();
        pktline::read_until_flush(&mut r, &mut content)?;
        let result = match command.as_str() {
            "clean" => filter.clean(&path, content),
            "smudge" => match delivered.remove(&path) {
                // Git collects a delayed file (with empty content).
                Some(done) => smudged(done),
                None => match filter.prepare_smudge(&path, content, blob) {
                    Prepared::Done(done) => smudged(done),
                    Prepared::Open(work) if can_delay => {
                        let pool = match &mut pool {
                            Some(pool) => pool,
                            None => match filter.shared_keys() {
                                Some(keys) => pool.insert(Pool::start(keys)),
                                None => {
                                    respond(
                                        &mut w,
                                        smudged(filter.complete_smudge(work, Opened::NoKey)),
                                    )?;
                                    continue;
                                }
                            },
                        };
                        pool.submit(work);
                        pktline::write_text(&mut w, "status=delayed")?;
                        pktline::write_flush(&mut w)?;
                        w.flush()?;
                        continue;
                    }
                    Prepared::Open(mut work) => {
                        let opened = match filter.shared_keys() {
                            Some(keys) => open_work(keys.as_ref(), &mut work),
                            None => Opened::NoKey,
                        };
                        smudged(filter.complete_smudge(work, opened))
                    }
                },
            },
            other => Err(format!("{path}: unsupported filter command {other:?}")),
        };
        respond(&mut w, result)?;
    }
    drop(pool);
    if let Some(summary) = filter.finish() {
        eprintln!("{summary}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_refuses_other_protocols() {
        let mut input = Vec::new();
        pktline::write_text(&mut input, "git-filter-client").unwrap();
        pktline::write_text(&mut input, "version=3").unwrap();
        pktline::write_flush(&mut input).unwrap();
        let mut filter = Filter::from_env();
        let err = serve(&input[..], Vec::new(), &mut filter).unwrap_err();
        assert!(err.to_string().contains("version=2"), "{err}");
    }
}
