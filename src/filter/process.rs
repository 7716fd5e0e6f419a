//! Git's long-running filter protocol, version 2 (gitattributes(5),
//! "Long Running Filter Process"): handshake, then `clean` and `smudge`
//! requests until Git closes our standard input. Only protocol goes to
//! stdout; messages go to stderr.

use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use super::pktline;
use super::prefetch::Prefetch;
use super::{open_work, Filter, Opened, Output, Prepared, Smudged, Work, STREAM_MIN};
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

/// Opens one envelope (normally [`open_work`] with the filter's keys).
type Job = Arc<dyn Fn(&mut Work) -> Opened + Send + Sync>;

/// Run `job` on `work`. A panic fails only this file, as a damaged envelope
/// does (the envelope stays in the work tree and the error names the path),
/// and the worker goes on: otherwise its result never comes back, so
/// [`Pool::ready`] waits forever and Git's checkout hangs. Answering
/// `status=error` instead would not help: under `filter.seal.required` Git
/// then aborts the checkout, and without it writes the collected (empty)
/// content.
fn run_job(job: &Job, work: &mut Work) -> Opened {
    match panic::catch_unwind(AssertUnwindSafe(|| job(work))) {
        Ok(opened) => opened,
        // The panic hook already printed the panic's message on stderr.
        Err(_) => Opened::Failed("internal error: opening it panicked".to_owned()),
    }
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
    fn start(job: Job) -> Pool {
        let threads = super::worker_threads();
        let (job_tx, job_rx) = mpsc::channel::<Work>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (result_tx, results) = mpsc::channel();
        let workers = (0..threads)
            .map(|_| {
                let (jobs, results, job) =
                    (Arc::clone(&job_rx), result_tx.clone(), Arc::clone(&job));
                let working = super::Working::start();
                thread::spawn(move || {
                    let _working = working;
                    loop {
                        let next = jobs.lock().map(|rx| rx.recv());
                        let Ok(Ok(mut work)) = next else { return };
                        let opened = run_job(&job, &mut work);
                        if results.send((work, opened)).is_err() {
                            return;
                        }
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

/// Answer one request; a [`Output::Blob`] is copied from `filter`'s
/// object database, and if that fails midway Git is told so after the
/// content (the protocol's late `status=error`).
fn respond(
    w: &mut impl Write,
    filter: Option<&Filter>,
    result: Result<Output, String>,
) -> io::Result<()> {
    match result {
        Ok(Output::Bytes(bytes)) => {
            pktline::write_text(w, "status=success")?;
            pktline::write_flush(w)?;
            pktline::write_content(w, &bytes)?;
            drop(bytes);
            // An empty list keeps "status=success".
            pktline::write_flush(w)?;
        }
        Ok(output @ (Output::Blob(_) | Output::Spilled(_) | Output::Framed { .. })) => {
            pktline::write_text(w, "status=success")?;
            pktline::write_flush(w)?;
            let mut packets = pktline::Packets::new(&mut *w);
            let copied = match filter {
                Some(filter) => filter.write_output(&output, &mut packets),
                None => Err(io::Error::other("no repository")),
            };
            packets.finish()?;
            pktline::write_flush(w)?;
            if let Err(e) = copied {
                let what = match output {
                    Output::Blob(blob) => format!("read blob {blob}"),
                    Output::Spilled(_) => "read the envelope's text".to_owned(),
                    _ => "write the envelope's text".to_owned(),
                };
                eprintln!("git-seal: error: cannot {what}: {e}");
                pktline::write_text(w, "status=error")?;
            }
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

fn smudged(s: Smudged) -> Result<Output, String> {
    if let Some(error) = s.error {
        eprintln!("git-seal: error: {error}");
    }
    Ok(s.bytes)
}

/// What was opened ahead for `path` in a checkout (restarting `prefetch`
/// on a new tree, with `filter`'s clean-cache key).
fn open_ahead(
    prefetch: &mut Option<Prefetch>,
    filter: &mut Filter,
    checkout: Option<(Oid, Oid, &Arc<dyn KeyProvider>)>,
    path: &str,
) -> Option<Opened> {
    let (treeish, blob, keys) = checkout?;
    if prefetch.as_ref().map(Prefetch::treeish) != Some(treeish) {
        drop(prefetch.take());
        let mac = filter.cache_mut().map(|cache| cache.mac_key());
        *prefetch = Some(Prefetch::start(treeish, Arc::clone(keys), mac));
    }
    prefetch.as_ref()?.take(path, blob)
}

/// Serve one Git command's worth of filter requests.
pub fn serve(input: impl Read, output: impl Write, filter: &mut Filter) -> io::Result<()> {
    let keys = filter.shared_keys();
    let open = keys
        .clone()
        .map(|keys| -> Job { Arc::new(move |work: &mut Work| open_work(keys.as_ref(), work)) });
    serve_with(input, output, filter, open, keys)
}

/// [`serve`], opening envelopes with `open` (`None`: no key provider here,
/// so every envelope stays sealed), and ahead of Git's requests with
/// `ahead` when Git names the tree it checks out.
fn serve_with(
    input: impl Read,
    output: impl Write,
    filter: &mut Filter,
    open: Option<Job>,
    ahead: Option<Arc<dyn KeyProvider>>,
) -> io::Result<()> {
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
    let mut prefetch: Option<Prefetch> = None;
    // Delayed files opened, by path (only UTF-8 paths are delayed).
    let mut delivered: HashMap<String, Smudged> = HashMap::new();
    while let Some(raw_headers) = pktline::read_list(&mut r)? {
        let headers: Vec<String> = raw_headers
            .iter()
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .collect();
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
        // The path as text (U+FFFD for bytes that are not UTF-8), which
        // the filter remembers with the bytes that name the file.
        let named = raw_headers
            .iter()
            .find_map(|h| h.strip_prefix(b"pathname="))
            .unwrap_or_default();
        let path = filter.name_path(named);
        let blob = value("blob").and_then(|b| Oid::from_str(b).ok());
        // A path that is not UTF-8 is not delayed: Git must be told it is
        // ready by its very bytes, and two such paths can share a text.
        let can_delay = value("can-delay") == Some("1") && std::str::from_utf8(named).is_ok();
        let treeish = value("treeish").and_then(|t| Oid::from_str(t).ok());
        let mut content = Vec::new();
        if command == "clean" {
            // Large files are sealed as they arrive (clean_stream).
            let result = if pktline::read_up_to(&mut r, &mut content, STREAM_MIN)? {
                filter.clean(&path, content).map(Output::Bytes)
            } else {
                filter.before_large();
                let mut next = |buf: &mut Vec<u8>| pktline::read_data_into(&mut r, buf);
                filter.clean_stream(&path, content, &mut next)?
            };
            respond(&mut w, Some(filter), result)?;
            continue;
        }
        if command != "smudge" {
            pktline::read_until_flush(&mut r, &mut content)?;
            let result = Err(format!("{path}: unsupported filter command {command:?}"));
            respond(&mut w, Some(filter), result)?;
            continue;
        }
        // Git collects a delayed file (with empty content).
        if let Some(done) = delivered.remove(&path) {
            pktline::read_until_flush(&mut r, &mut content)?;
            respond(&mut w, Some(filter), smudged(done))?;
            continue;
        }
        // A large envelope is read as it arrives, holding only its
        // ciphertext, and opened here rather than delayed: a worker would
        // hold it while Git sends more.
        let complete = pktline::read_up_to(&mut r, &mut content, STREAM_MIN)?;
        if !complete {
            filter.before_large();
        }
        let streamed = !complete && blob.is_some() && open.is_some();
        // The tree Git checks out, the blob and the keys to open it ahead.
        let checkout = match (treeish, blob, &ahead) {
            (Some(treeish), Some(blob), Some(keys)) if complete => Some((treeish, blob, keys)),
            _ => None,
        };
        let (prepared, opened_ahead) =
            match (blob, open_ahead(&mut prefetch, filter, checkout, &path)) {
                // Opened ahead: Git's copy of the text is not parsed again.
                (Some(blob), Some(opened @ Opened::Plain { .. })) => (
                    Prepared::Done(filter.smudge_opened(&path, content, blob, opened)),
                    None,
                ),
                // Failed ahead: judged as any smudge, with that outcome.
                (_, Some(failed)) => (filter.prepare_smudge(&path, content, blob), Some(failed)),
                (Some(blob), None) if streamed && filter.streams_smudge(&content) => {
                    let mut next = |buf: &mut Vec<u8>| pktline::read_data_into(&mut r, buf);
                    let prepared =
                        filter.prepare_smudge_stream(&path, content, Some(blob), &mut next)?;
                    (prepared, None)
                }
                (_, None) => {
                    if !complete {
                        pktline::read_until_flush(&mut r, &mut content)?;
                    }
                    (filter.prepare_smudge(&path, content, blob), None)
                }
            };
        let result = match prepared {
            Prepared::Done(done) => smudged(done),
            // A checkout: opened ahead, so not delayed (see `prefetch`).
            Prepared::Open(mut work) if checkout.is_some() => {
                let opened = match (opened_ahead, &open) {
                    (Some(opened), _) => opened,
                    (None, Some(open)) => run_job(open, &mut work),
                    (None, None) => Opened::NoKey,
                };
                smudged(filter.complete_smudge(work, opened))
            }
            Prepared::Open(work) if can_delay && complete => {
                let pool = match &mut pool {
                    Some(pool) => pool,
                    None => match &open {
                        Some(open) => pool.insert(Pool::start(Arc::clone(open))),
                        None => {
                            let opened = filter.complete_smudge(work, Opened::NoKey);
                            respond(&mut w, Some(filter), smudged(opened))?;
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
                let opened = match &open {
                    Some(open) => run_job(open, &mut work),
                    None => Opened::NoKey,
                };
                smudged(filter.complete_smudge(work, opened))
            }
        };
        respond(&mut w, Some(filter), result)?;
    }
    drop(pool);
    drop(prefetch);
    if let Some(summary) = filter.finish() {
        eprintln!("{summary}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Git's side of a session, written as Git writes it.
    #[derive(Default)]
    struct Git(Vec<u8>);

    impl Git {
        /// Text packets, then a flush.
        fn list(mut self, lines: &[&str]) -> Git {
            for line in lines {
                pktline::write_text(&mut self.0, line).unwrap();
            }
            pktline::write_flush(&mut self.0).unwrap();
            self
        }

        /// File content, then a flush.
        fn content(mut self, content: &[u8]) -> Git {
            pktline::write_content(&mut self.0, content).unwrap();
            self
        }
    }

    /// The filter's answers, as the packets between flushes.
    fn answers(mut output: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let mut lists = vec![Vec::new()];
        while let Some(packet) = pktline::read(&mut output).unwrap() {
            match packet {
                pktline::Packet::Flush => lists.push(Vec::new()),
                pktline::Packet::Data(data) => lists.last_mut().unwrap().push(data),
            }
        }
        assert_eq!(lists.pop(), Some(Vec::new()), "output ends with a flush");
        lists
    }

    /// Run `serve_with` on another thread, failing (not hanging) if it
    /// does not finish in time. Returns the output.
    fn serve_within(input: Vec<u8>, open: Job) -> Vec<u8> {
        serve_filter_within(input, open, Filter::from_env)
    }

    /// [`serve_within`] with the filter `make` makes.
    fn serve_filter_within(input: Vec<u8>, open: Job, make: fn() -> Filter) -> Vec<u8> {
        let (done, finished) = mpsc::channel();
        thread::spawn(move || {
            let mut filter = make();
            let mut output = Vec::new();
            let served = serve_with(&input[..], &mut output, &mut filter, Some(open), None);
            let _ = done.send(served.map(|()| output));
        });
        match finished.recv_timeout(Duration::from_secs(30)) {
            Ok(served) => served.expect("the session ends cleanly"),
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the filter process hung"),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the filter process crashed"),
        }
    }

    const ENVELOPE: &[u8] = include_bytes!("../../tests/vectors/envelope-v1/valid/text.envelope");

    /// Opens every envelope to `opened\n`, except that it panics on
    /// `boom.env`.
    fn panics_on_boom() -> Job {
        Arc::new(|work: &mut Work| {
            if work.path == "boom.env" {
                panic!("test: opening boom.env panics");
            }
            Opened::Plain {
                plaintext: b"opened\n".to_vec(),
                aad: None,
                kids: Vec::new(),
                mac: None,
                frame: None,
            }
        })
    }

    fn text(list: &[Vec<u8>]) -> Vec<String> {
        list.iter()
            .map(|p| String::from_utf8_lossy(p).trim_end().to_owned())
            .collect()
    }

    /// What runs before large files runs once, and only in a session
    /// that has one: small files leave Git's pipes as they are.
    #[test]
    fn before_large_files_runs_once_and_only_for_a_large_file() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        fn count() {
            CALLS.fetch_add(1, Ordering::SeqCst);
        }
        let make = || Filter::from_env().before_large_files(count);
        let session = |contents: &[&[u8]]| {
            let mut git = Git::default()
                .list(&["git-filter-client", "version=2"])
                .list(&["capability=clean", "capability=smudge"]);
            for (i, content) in contents.iter().enumerate() {
                let path = format!("pathname=f{i}.txt");
                git = git.list(&["command=smudge", &path]).content(content);
            }
            let output = serve_filter_within(git.0, panics_on_boom(), make);
            answers(&output).len()
        };
        let large = vec![b'x'; STREAM_MIN + 1];
        session(&[b"small\n", b"also small\n"]);
        assert_eq!(CALLS.load(Ordering::SeqCst), 0);
        session(&[b"small\n", &large, &large]);
        assert_eq!(CALLS.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn pool_job_that_panics_fails_its_path_instead_of_hanging() {
        let envelope = ENVELOPE;
        let input = Git::default()
            .list(&["git-filter-client", "version=2"])
            .list(&["capability=clean", "capability=smudge", "capability=delay"])
            .list(&["command=smudge", "pathname=boom.env", "can-delay=1"])
            .content(envelope)
            .list(&["command=smudge", "pathname=fine.env", "can-delay=1"])
            .content(envelope)
            // Each list waits for at least one job while any is pending:
            // two lists see both jobs through.
            .list(&["command=list_available_blobs"])
            .list(&["command=list_available_blobs"])
            // Git collects a delayed path with empty content.
            .list(&["command=smudge", "pathname=boom.env"])
            .content(b"")
            .list(&["command=smudge", "pathname=fine.env"])
            .content(b"")
            .0;
        let output = serve_within(input, panics_on_boom());
        let lists = answers(&output);
        assert_eq!(text(&lists[2]), ["status=delayed"]);
        assert_eq!(text(&lists[3]), ["status=delayed"]);
        let mut listed: Vec<String> = [&lists[4], &lists[6]]
            .into_iter()
            .flat_map(|l| text(l))
            .collect();
        listed.sort();
        assert_eq!(listed, ["pathname=boom.env", "pathname=fine.env"]);
        assert_eq!(text(&lists[5]), ["status=success"]);
        assert_eq!(text(&lists[7]), ["status=success"]);
        // The panicking path is left sealed (never partial plaintext), and
        // the checkout goes on: the other path opens.
        assert_eq!(text(&lists[8]), ["status=success"]);
        assert_eq!(lists[9].concat(), envelope);
        assert!(lists[10].is_empty(), "status stays success");
        assert_eq!(text(&lists[11]), ["status=success"]);
        assert_eq!(lists[12].concat(), b"opened\n");
        assert!(lists[13].is_empty());
        assert_eq!(lists.len(), 14, "{lists:?}");
    }

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

    #[test]
    fn open_that_panics_without_delay_fails_its_path_and_serving_goes_on() {
        let input = Git::default()
            .list(&["git-filter-client", "version=2"])
            .list(&["capability=clean", "capability=smudge"])
            .list(&["command=smudge", "pathname=boom.env"])
            .content(ENVELOPE)
            .list(&["command=smudge", "pathname=fine.env"])
            .content(ENVELOPE)
            .0;
        let output = serve_within(input, panics_on_boom());
        let lists = answers(&output);
        assert_eq!(text(&lists[1]), ["capability=clean", "capability=smudge"]);
        assert_eq!(text(&lists[2]), ["status=success"]);
        assert_eq!(lists[3].concat(), ENVELOPE);
        assert!(lists[4].is_empty());
        assert_eq!(text(&lists[5]), ["status=success"]);
        assert_eq!(lists[6].concat(), b"opened\n");
        assert!(lists[7].is_empty());
        assert_eq!(lists.len(), 8, "{lists:?}");
    }
}
