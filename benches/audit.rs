//! Audit-chain verification speed (issue 5: at least 20,000 entries/s).
//!
//!   cargo bench --bench audit -- [ENTRIES]      (default 50000)
//!
//! Builds a chain of ENTRIES signed entries in a temporary repository (on
//! tmpfs when there is one), then times the release `git-seal audit verify`
//! on it, first with loose objects (as appended locally) and then after
//! `git gc` (as fetched). Prints entries per second for each, and for plain
//! Git reading the same entries and stock `git verify-commit`.
//! AUDIT_BENCH_KEEP=1 keeps the repository (for profiling).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use git_seal::audit::{chain, NewEntry, Signer, REF};
use git_seal::repo::Repo;
use serde_json::{json, Map};

fn main() {
    let entries: u64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(|a| a.parse().expect("ENTRIES is a number"))
        .unwrap_or(50_000);
    let base = if Path::new("/dev/shm").is_dir() {
        "/dev/shm".into()
    } else {
        std::env::temp_dir()
    };
    let tmp = tempfile::tempdir_in(base).unwrap();
    let dir = tmp.path().join("repo");
    for (k, v) in [
        ("GIT_AUTHOR_NAME", "bench"),
        ("GIT_AUTHOR_EMAIL", "bench@example.test"),
        ("GIT_COMMITTER_NAME", "bench"),
        ("GIT_COMMITTER_EMAIL", "bench@example.test"),
        ("GIT_CONFIG_NOSYSTEM", "1"),
    ] {
        std::env::set_var(k, v);
    }
    std::env::set_var("GIT_CONFIG_GLOBAL", tmp.path().join("gitconfig"));
    std::fs::write(tmp.path().join("gitconfig"), "").unwrap();
    git(
        tmp.path(),
        &["init", "-q", "-b", "main", dir.to_str().unwrap()],
    );
    let repo = Repo::discover(&dir).unwrap();
    let signer = Signer::load_or_create_in(&tmp.path().join("signer")).unwrap();

    let started = Instant::now();
    let mut tip = None;
    for seq in 1..=entries {
        let mut data = Map::new();
        let event = if seq == 1 {
            data.insert("kids".into(), json!(["k_0123456789abcdef"]));
            "init"
        } else {
            data.insert("commit".into(), json!(format!("{seq:040x}")));
            data.insert(
                "paths".into(),
                json!([{"path": format!("secrets/f{seq}.env"), "change": "modified",
                        "blob": format!("{:040x}", seq * 7), "kids": ["k_0123456789abcdef"]}]),
            );
            "seal"
        };
        let parents: Vec<_> = tip.into_iter().collect();
        let new = NewEntry { event, data };
        tip = Some(chain::write_entry(&repo, &signer, &parents, seq, &new).unwrap());
    }
    let tip = tip.expect("at least one entry");
    assert!(repo.update_ref_cas(REF, tip, None, "bench").unwrap());
    println!(
        "built {entries} signed entries in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let loose = time_verify(&dir, entries);
    git(&dir, &["gc", "-q"]);
    let packed = time_verify(&dir, entries);
    let plain = time_plain_read(&dir, entries);
    println!("audit verify, loose objects: {loose:.0} entries/s");
    println!("audit verify, after git gc:  {packed:.0} entries/s");
    println!(
        "plain git reading every entry (git log -p): {plain:.0} entries/s (verify takes {:.2}x its time)",
        plain / packed
    );
    if let Some(stock) = time_stock_verify(&dir, tmp.path(), 200) {
        println!(
            "stock git verify-commit, one entry at a time: {stock:.0} entries/s ({:.0}x slower than audit verify)",
            packed / stock
        );
    }
    println!("target (issue 5): >= 20000 entries/s");
    if std::env::var_os("AUDIT_BENCH_KEEP").is_some() {
        println!("kept {}", tmp.keep().display());
    }
}

/// Best of three runs of the release binary, in entries per second.
fn time_verify(dir: &Path, entries: u64) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_git-seal"))
            .args(["audit", "verify"])
            .current_dir(dir)
            .output()
            .unwrap();
        let seconds = started.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "verify failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        best = best.min(seconds);
    }
    entries as f64 / best
}

/// Plain Git reading every entry commit and its `entry.json` (no
/// signature checks), best of three, in entries per second.
fn time_plain_read(dir: &Path, entries: u64) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let out = Command::new("git")
            .args(["log", "-p", "--format=%H %P%n%B", REF])
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success());
        best = best.min(started.elapsed().as_secs_f64());
    }
    entries as f64 / best
}

/// Stock `git verify-commit` over the newest `n` entries (it runs
/// `ssh-keygen` per entry), in entries per second; `None` without ssh-keygen.
fn time_stock_verify(dir: &Path, tmp: &Path, n: usize) -> Option<f64> {
    Command::new("ssh-keygen").arg("-?").output().ok()?;
    let signers = tmp.join("allowed_signers");
    let out = Command::new(env!("CARGO_BIN_EXE_git-seal"))
        .args(["audit", "allowed-signers", "--out"])
        .arg(&signers)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let list = Command::new("git")
        .args(["rev-list", "-n", &n.to_string(), REF])
        .current_dir(dir)
        .output()
        .unwrap();
    let commits: Vec<String> = String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let config = format!("gpg.ssh.allowedSignersFile={}", signers.display());
    let started = Instant::now();
    for commit in &commits {
        let status = Command::new("git")
            .args(["-c", &config, "verify-commit", commit])
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "git verify-commit {commit} failed");
    }
    Some(commits.len() as f64 / started.elapsed().as_secs_f64())
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?} failed");
}
