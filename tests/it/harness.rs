//! A hermetic environment for driving the real `git` and `git-seal` binaries:
//! cleared environment, temporary HOME, empty global and system Git config,
//! fixed author and dates, its own key directory, and the built `git-seal`
//! first on PATH. Failures print the command, its output and the directory.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub(crate) struct Env {
    pub tmp: tempfile::TempDir,
    pub home: PathBuf,
    pub key_dir: PathBuf,
    extra: Vec<(String, String)>,
}

impl Env {
    pub(crate) fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(home.join("gitconfig-global"), "").unwrap();
        std::fs::write(home.join("gitconfig-system"), "").unwrap();
        let key_dir = home.join("keys");
        Env {
            home,
            key_dir,
            tmp,
            extra: Vec::new(),
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Set an extra environment variable for every later command.
    pub(crate) fn set(&mut self, key: &str, value: &str) {
        self.extra.retain(|(k, _)| k != key);
        self.extra.push((key.to_owned(), value.to_owned()));
    }

    pub(crate) fn unset(&mut self, key: &str) {
        self.extra.retain(|(k, _)| k != key);
    }

    /// Run `f` with `key` set to `value` (`None`: unset), then put it back.
    pub(crate) fn with_var<R>(
        &mut self,
        key: &str,
        value: Option<&str>,
        f: impl FnOnce(&Env) -> R,
    ) -> R {
        let before = self.extra.iter().find(|(k, _)| k == key).cloned();
        match value {
            Some(value) => self.set(key, value),
            None => self.unset(key),
        }
        let result = f(self);
        match before {
            Some((_, value)) => self.set(key, &value),
            None => self.unset(key),
        }
        result
    }

    pub(crate) fn command(&self, program: impl AsRef<OsStr>, dir: &Path) -> Command {
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_git-seal")).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new(program);
        cmd.current_dir(dir)
            .env_clear()
            .env("PATH", path)
            .env("HOME", &self.home)
            .env("XDG_DATA_HOME", self.home.join(".local/share"))
            .env("GIT_CONFIG_GLOBAL", self.home.join("gitconfig-global"))
            .env("GIT_CONFIG_SYSTEM", self.home.join("gitconfig-system"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Ada Tester")
            .env("GIT_AUTHOR_EMAIL", "ada@example.test")
            .env("GIT_COMMITTER_NAME", "Ada Tester")
            .env("GIT_COMMITTER_EMAIL", "ada@example.test")
            .env("GIT_AUTHOR_DATE", "2026-01-02T03:04:05Z")
            .env("GIT_COMMITTER_DATE", "2026-01-02T03:04:05Z")
            .env("GIT_SEAL_KEY_DIR", &self.key_dir)
            .env("LANG", "C")
            .env("TZ", "UTC")
            .stdin(Stdio::null());
        for (k, v) in &self.extra {
            cmd.env(k, v);
        }
        cmd
    }

    /// Run a command, feeding `stdin`, and return its output (any status).
    pub(crate) fn run(
        &self,
        program: &str,
        dir: &Path,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Output {
        let mut cmd = self.command(program, dir);
        cmd.args(args);
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        if let Some(input) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    #[track_caller]
    pub(crate) fn ok(&self, program: &str, dir: &Path, args: &[&str]) -> Output {
        let out = self.run(program, dir, args, None);
        if !out.status.success() {
            fail(program, dir, args, &out, "expected success");
        }
        out
    }

    #[track_caller]
    pub(crate) fn fails(&self, program: &str, dir: &Path, args: &[&str], code: i32) -> Output {
        let out = self.run(program, dir, args, None);
        if out.status.code() != Some(code) {
            fail(program, dir, args, &out, &format!("expected exit {code}"));
        }
        out
    }

    #[track_caller]
    pub(crate) fn git(&self, dir: &Path, args: &[&str]) -> String {
        stdout(&self.ok("git", dir, args))
    }

    #[track_caller]
    pub(crate) fn seal(&self, dir: &Path, args: &[&str]) -> String {
        stdout(&self.ok("git-seal", dir, args))
    }

    /// A new repository with one commit on `main`.
    pub(crate) fn repo(&self, name: &str) -> PathBuf {
        let dir = self.path(name);
        std::fs::create_dir_all(&dir).unwrap();
        self.git(&dir, &["init", "-q", "-b", "main"]);
        std::fs::write(dir.join("README"), "hello\n").unwrap();
        self.git(&dir, &["add", "README"]);
        self.git(&dir, &["commit", "-q", "-m", "initial"]);
        dir
    }

    /// An empty bare repository (a server) whose default branch is `main`.
    pub(crate) fn bare(&self, name: &str) -> PathBuf {
        let dir = self.path(name);
        let path = dir.to_str().unwrap();
        self.git(
            self.tmp.path(),
            &["init", "-q", "--bare", "-b", "main", path],
        );
        dir
    }

    /// A repository set up with `git seal init 'secrets/**'` and committed.
    pub(crate) fn sealed_repo(&self, name: &str) -> PathBuf {
        let dir = self.repo(name);
        self.seal(&dir, &["init", "secrets/**"]);
        self.git(&dir, &["add", ".gitattributes", ".seal"]);
        self.git(&dir, &["commit", "-q", "-m", "set up git-seal"]);
        dir
    }

    /// A sealed repository (as [`Env::sealed_repo`]) with `main` pushed to a
    /// bare server whose pre-receive hook is git-seal's; (repo, server).
    pub(crate) fn served_repo(&self, name: &str) -> (PathBuf, PathBuf) {
        let dir = self.sealed_repo(name);
        let server = self.bare(&format!("{name}-server.git"));
        self.seal(&server, &["hooks", "install"]);
        self.git(&dir, &["remote", "add", "origin", server.to_str().unwrap()]);
        self.git(&dir, &["push", "-q", "origin", "main"]);
        (dir, server)
    }

    /// The only key file's kid.
    pub(crate) fn kid(&self) -> String {
        let mut kids: Vec<String> = std::fs::read_dir(&self.key_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter_map(|n| n.strip_suffix(".key").map(str::to_owned))
            .collect();
        assert_eq!(kids.len(), 1, "expected one key file: {kids:?}");
        kids.pop().unwrap()
    }

    /// Move the key directory away (as on a machine without the key).
    pub(crate) fn hide_keys(&self) -> PathBuf {
        let hidden = self.path("hidden-keys");
        std::fs::rename(&self.key_dir, &hidden).unwrap();
        hidden
    }

    pub(crate) fn restore_keys(&self, hidden: &Path) {
        std::fs::rename(hidden, &self.key_dir).unwrap();
    }
}

pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn fail(program: &str, dir: &Path, args: &[&str], out: &Output, why: &str) -> ! {
    let listing = Command::new("ls")
        .arg("-laR")
        .arg(dir)
        .output()
        .map(|o| stdout(&o))
        .unwrap_or_default();
    let listing: String = listing.lines().take(60).collect::<Vec<_>>().join("\n");
    panic!(
        "{why}: `{program} {}` in {}\nexit: {:?}\n--- stdout\n{}\n--- stderr\n{}\n--- listing\n{listing}",
        args.join(" "),
        dir.display(),
        out.status.code(),
        stdout(out),
        stderr(out)
    );
}

/// Is this byte string a git-seal envelope (by the library's strict parser)?
pub(crate) fn is_envelope(bytes: &[u8]) -> bool {
    git_seal::envelope::is_envelope(bytes)
}

/// Assert that `HEAD:path` is an envelope and the work tree holds `plain`.
#[track_caller]
pub(crate) fn assert_sealed(env: &Env, dir: &Path, path: &str, plain: &[u8]) {
    let stored = env
        .ok("git", dir, &["cat-file", "-p", &format!("HEAD:{path}")])
        .stdout;
    assert!(
        is_envelope(&stored),
        "HEAD:{path} is not an envelope:\n{}",
        String::from_utf8_lossy(&stored)
    );
    let tmp = env.path("stored.envelope");
    std::fs::write(&tmp, &stored).unwrap();
    let opened = env
        .ok("git-seal", dir, &["decrypt", tmp.to_str().unwrap()])
        .stdout;
    assert_eq!(
        opened, plain,
        "HEAD:{path} does not open to the work-tree content"
    );
    assert_eq!(
        std::fs::read(dir.join(path)).unwrap(),
        plain,
        "work tree {path} is not the plaintext"
    );
}

/// Is `CI=true` (tests that need an installed component must not skip)?
pub(crate) fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A base64 string with its first character changed (a flipped bit or two).
pub(crate) fn flip_first(text: &str) -> String {
    let mut chars = text.chars();
    let first = chars.next().expect("non-empty");
    format!("{}{}", if first == 'A' { 'B' } else { 'A' }, chars.as_str())
}

/// The names of the entries of `dir` that start with `prefix`.
pub(crate) fn names_starting(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Write a work-tree file, creating its directories.
pub(crate) fn write_file(dir: &Path, path: &str, content: &[u8]) {
    let file = dir.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, content).unwrap();
}

impl Env {
    /// `git clone` `from` into a new directory `name` (no git-seal setup).
    pub(crate) fn clone_repo(&self, from: &Path, name: &str) -> PathBuf {
        let to = self.path(name);
        self.git(
            self.tmp.path(),
            &["clone", "-q", from.to_str().unwrap(), to.to_str().unwrap()],
        );
        to
    }

    /// Stage `content` at `path` exactly as given, running no filter (what
    /// a libgit2-based client does); also writes the work-tree file.
    pub(crate) fn stage_raw(&self, dir: &Path, path: &str, content: &[u8]) {
        write_file(dir, path, content);
        let id = self.git(dir, &["hash-object", "-w", "--no-filters", path]);
        let info = format!("100644,{},{path}", id.trim());
        self.git(dir, &["update-index", "--add", "--cacheinfo", &info]);
    }

    /// `git rev-parse REV`, trimmed.
    pub(crate) fn rev(&self, dir: &Path, rev: &str) -> String {
        self.git(dir, &["rev-parse", rev]).trim().to_owned()
    }
}

/// Set one field of the work tree's `.seal/policy.json`.
pub(crate) fn set_policy(dir: &Path, field: &str, value: serde_json::Value) {
    let path = dir.join(".seal/policy.json");
    let mut policy: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    policy[field] = value;
    std::fs::write(&path, serde_json::to_string_pretty(&policy).unwrap()).unwrap();
}

/// `kill -9` a running git-seal as a user would (its `git` children live
/// on), then wait until those children have exited, so the next command
/// does not race them for `.git/index.lock`. The process is stopped first,
/// so that it cannot start another child between the look and the kill.
pub(crate) fn kill9_and_wait_for_children(child: &mut std::process::Child) {
    let pid = child.id();
    let signal = |sig: &str, pid: u32| {
        let _ = Command::new("kill")
            .args([sig, &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    };
    signal("-STOP", pid);
    let descendants = descendants_of(pid);
    signal("-KILL", pid);
    let _ = child.wait();
    for _ in 0..2000 {
        if descendants
            .iter()
            .all(|p| !Path::new(&format!("/proc/{p}")).exists() || is_zombie(*p))
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("the children of a killed git-seal ({descendants:?}) did not exit in 10 s");
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid …"; comm may hold spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(1)?.parse().ok()
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(true)
}

fn descendants_of(root: u32) -> Vec<u32> {
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let mut found = vec![root];
    let mut grew = true;
    while grew {
        grew = false;
        for &pid in &pids {
            if !found.contains(&pid) && parent_of(pid).is_some_and(|p| found.contains(&p)) {
                found.push(pid);
                grew = true;
            }
        }
    }
    found.retain(|&p| p != root);
    found
}

impl Env {
    /// The bytes of `REV:PATH`'s blob, as stored.
    #[track_caller]
    pub(crate) fn blob_at(&self, dir: &Path, rev_path: &str) -> Vec<u8> {
        self.ok("git", dir, &["cat-file", "-p", rev_path]).stdout
    }

    /// `REV:PATH`'s blob as envelope JSON (failing if it is not JSON).
    #[track_caller]
    pub(crate) fn envelope_at(&self, dir: &Path, rev_path: &str) -> serde_json::Value {
        let text = self.blob_at(dir, rev_path);
        serde_json::from_slice(&text).unwrap_or_else(|e| {
            panic!(
                "{rev_path} is not an envelope ({e}):\n{}",
                String::from_utf8_lossy(&text)
            )
        })
    }
}

impl Env {
    /// Commit `n` small files `DIR/fNNNN.txt` (each `value N`).
    pub(crate) fn commit_files(&self, dir: &Path, under: &str, n: usize) {
        for i in 0..n {
            write_file(
                dir,
                &format!("{under}/f{i:04}.txt"),
                format!("value {i}\n").as_bytes(),
            );
        }
        self.git(dir, &["add", under]);
        self.git(
            dir,
            &["commit", "-q", "-m", &format!("{n} files under {under}")],
        );
    }
}

/// Is `program --version` runnable here? When not, the test skips (saying
/// what installs it), except under CI=true, where it fails.
pub(crate) fn have_tool(program: &str, install: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            !in_ci(),
            "{program} is missing under CI=true ({install}; see .ci/run)"
        );
        eprintln!("skipping: {program} is not installed ({install})");
    }
    found
}

impl Env {
    /// As this environment's user (a trusted signer), trust the signer of
    /// `other`'s user (`git seal audit signer show` there) as `email`.
    pub(crate) fn trust_signer_of(&self, dir: &Path, other: &Env, email: &str) {
        let key = other.seal(dir, &["audit", "signer", "show"]);
        let add = ["audit", "signer", "add", key.trim(), "--email", email];
        self.seal(dir, &add);
    }
}
