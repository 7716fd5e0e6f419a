//! Kill loops: `kill -9` at random moments of every command that changes
//! many files, then the same command again; nothing may be lost, no
//! plaintext of a sealed path may reach the object store, and the audit
//! chain must verify. The seed of the random moments is printed, so a
//! failure can be replayed.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::harness::{is_envelope, kill9_and_wait_for_children, write_file, Env};

const KILLS: usize = 30;
const FILES: usize = 200;

/// A small xorshift: random moments without a dependency.
struct Moments(u64);

impl Moments {
    fn new() -> Moments {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64
            | 1;
        eprintln!("kill moments seed: {seed}");
        Moments(seed)
    }

    /// A delay between 0 and `max_ms` milliseconds.
    fn next(&mut self, max_ms: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(self.0 % max_ms.max(1))
    }
}

fn plain(i: usize) -> Vec<u8> {
    format!("kill-loop secret {i:04}\n").into_bytes()
}

/// Run `git seal ARGS`, `kill -9` it after `delay` (if it still runs), and
/// wait for the git it started. Returns whether the kill landed mid-run.
fn kill_during(env: &Env, dir: &Path, args: &[&str], delay: Duration) -> bool {
    let mut child = env
        .command("git-seal", dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let running = child.try_wait().unwrap().is_none();
    kill9_and_wait_for_children(&mut child);
    running
}

fn sealed_files_repo(env: &Env) -> std::path::PathBuf {
    let dir = env.sealed_repo("r");
    for i in 0..FILES {
        write_file(&dir, &format!("secrets/f{i:04}.env"), &plain(i));
    }
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "many"]);
    dir
}

#[track_caller]
fn assert_work_tree_complete(env: &Env, dir: &Path) {
    for i in 0..FILES {
        let path = format!("secrets/f{i:04}.env");
        let bytes = std::fs::read(dir.join(&path))
            .unwrap_or_else(|e| panic!("{path} is missing after a rerun: {e}"));
        assert_eq!(bytes, plain(i), "{path}");
    }
    assert_eq!(env.git(dir, &["status", "--porcelain"]), "");
}

/// No object in the store holds the plaintext of a sealed file.
#[track_caller]
fn assert_no_plaintext_objects(env: &Env, dir: &Path) {
    let all = env
        .ok("git", dir, &["cat-file", "--batch-all-objects", "--batch"])
        .stdout;
    let needle = b"kill-loop secret";
    assert!(
        !all.windows(needle.len()).any(|w| w == needle),
        "plaintext of a sealed file is in the object store"
    );
}

#[track_caller]
fn assert_chain_verifies(env: &Env, dir: &Path) {
    env.ok("git-seal", dir, &["audit", "verify"]);
}

#[test]
fn unlock_killed_at_random_moments_loses_nothing() {
    let env = Env::new();
    let dir = sealed_files_repo(&env);
    let mut moments = Moments::new();
    let mut landed = 0;
    for _ in 0..KILLS {
        env.seal(&dir, &["lock"]);
        landed += usize::from(kill_during(&env, &dir, &["unlock"], moments.next(400)));
        env.seal(&dir, &["unlock"]);
        assert_work_tree_complete(&env, &dir);
    }
    assert_no_plaintext_objects(&env, &dir);
    assert_chain_verifies(&env, &dir);
    assert!(landed > 0, "no kill landed while unlock ran");
}

#[test]
fn lock_killed_at_random_moments_loses_nothing() {
    let env = Env::new();
    let dir = sealed_files_repo(&env);
    let mut moments = Moments::new();
    let mut landed = 0;
    for _ in 0..KILLS {
        landed += usize::from(kill_during(&env, &dir, &["lock"], moments.next(400)));
        env.seal(&dir, &["lock"]);
        for i in 0..FILES {
            let path = format!("secrets/f{i:04}.env");
            let bytes = std::fs::read(dir.join(&path))
                .unwrap_or_else(|e| panic!("{path} is missing after a rerun: {e}"));
            assert!(is_envelope(&bytes), "{path} stayed plaintext after lock");
        }
        assert_eq!(env.git(&dir, &["status", "--porcelain"]), "");
        env.seal(&dir, &["unlock"]);
        assert_work_tree_complete(&env, &dir);
    }
    assert_no_plaintext_objects(&env, &dir);
    assert_chain_verifies(&env, &dir);
    assert!(landed > 0, "no kill landed while lock ran");
}

#[test]
fn migrate_killed_at_random_moments_loses_nothing() {
    let env = Env::new();
    let dir = env.repo("r");
    // Plaintext committed before git-seal was set up.
    for i in 0..FILES {
        write_file(&dir, &format!("secrets/f{i:04}.env"), &plain(i));
    }
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "plaintext"]);
    env.seal(&dir, &["init", "secrets/**"]);
    env.git(&dir, &["add", ".gitattributes", ".seal"]);
    let mut moments = Moments::new();
    let mut landed = 0;
    for _ in 0..KILLS {
        // Back to the plaintext index each round.
        env.git(&dir, &["reset", "-q", "--", "secrets"]);
        landed += usize::from(kill_during(&env, &dir, &["migrate"], moments.next(500)));
        env.seal(&dir, &["migrate"]);
        let listed = env.git(&dir, &["ls-files", "-s", "--", "secrets"]);
        assert_eq!(listed.lines().count(), FILES, "an index entry was lost");
        for line in listed.lines() {
            let id = line.split_whitespace().nth(1).unwrap();
            let blob = env.ok("git", &dir, &["cat-file", "-p", id]).stdout;
            assert!(is_envelope(&blob), "not sealed in the index: {line}");
        }
        for i in 0..FILES {
            let path = format!("secrets/f{i:04}.env");
            assert_eq!(std::fs::read(dir.join(&path)).unwrap(), plain(i), "{path}");
        }
    }
    env.git(&dir, &["commit", "-q", "-m", "sealed"]);
    env.ok("git-seal", &dir, &["check", "HEAD~1..HEAD"]);
    assert_chain_verifies(&env, &dir);
    assert!(landed > 0, "no kill landed while migrate ran");
}

#[test]
fn audit_sync_killed_at_random_moments_loses_no_entry() {
    let env = Env::new();
    let server = env.bare("server.git");
    let a = env.sealed_repo("a");
    env.git(&a, &["remote", "add", "origin", server.to_str().unwrap()]);
    env.git(&a, &["push", "-q", "origin", "main"]);
    env.seal(&a, &["audit", "sync", "origin"]);
    let b = env.clone_repo(&server, "b");
    env.seal(&b, &["init"]);
    let mut moments = Moments::new();
    let mut landed = 0;
    for round in 0..KILLS {
        for (dir, who) in [(&a, "a"), (&b, "b")] {
            write_file(
                dir,
                &format!("secrets/{who}.env"),
                format!("{round}\n").as_bytes(),
            );
            env.git(dir, &["add", "-A"]);
            env.git(dir, &["commit", "-q", "-m", &format!("{who} {round}")]);
        }
        landed += usize::from(kill_during(
            &env,
            &a,
            &["audit", "sync", "origin"],
            moments.next(300),
        ));
        env.seal(&a, &["audit", "sync", "origin"]);
        env.seal(&b, &["audit", "sync", "origin"]);
        env.seal(&a, &["audit", "sync", "origin"]);
        assert_chain_verifies(&env, &a);
        assert_chain_verifies(&env, &b);
        assert_eq!(
            env.rev(&a, "refs/seal/audit"),
            env.rev(&b, "refs/seal/audit"),
            "the clones did not converge"
        );
    }
    // Every commit's entry survived: one seal entry per commit and clone.
    let log = env.seal(&a, &["audit", "log"]);
    let seals = log.lines().filter(|l| l.contains(" seal ")).count();
    assert!(
        seals >= 2 * KILLS,
        "{seals} seal entries for {} commits:\n{log}",
        2 * KILLS
    );
    assert!(landed > 0, "no kill landed while sync ran");
}

#[test]
fn two_clones_running_audit_sync_at_once_both_succeed() {
    let env = Env::new();
    let server = env.bare("server.git");
    let a = env.sealed_repo("a");
    env.git(&a, &["remote", "add", "origin", server.to_str().unwrap()]);
    env.git(&a, &["push", "-q", "origin", "main"]);
    env.seal(&a, &["audit", "sync", "origin"]);
    let b = env.clone_repo(&server, "b");
    env.seal(&b, &["init"]);
    for round in 0..6 {
        for (dir, who) in [(&a, "a"), (&b, "b")] {
            write_file(
                dir,
                &format!("secrets/{who}.env"),
                format!("{round}\n").as_bytes(),
            );
            env.git(dir, &["add", "-A"]);
            env.git(dir, &["commit", "-q", "-m", &format!("{who} {round}")]);
        }
        let syncs: Vec<_> = [&a, &b]
            .into_iter()
            .map(|dir| {
                env.command("git-seal", dir)
                    .args(["audit", "sync", "origin"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for sync in syncs {
            let out = sync.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    env.seal(&a, &["audit", "sync", "origin"]);
    env.seal(&b, &["audit", "sync", "origin"]);
    assert_eq!(
        env.rev(&a, "refs/seal/audit"),
        env.rev(&b, "refs/seal/audit")
    );
    assert_chain_verifies(&env, &a);
}

/// `rotate --reencrypt` over 2,000 files, killed at random moments and run
/// again each time: no index entry lost, every envelope opens with the
/// active KEK, the work tree matches the index, no key file is gone and
/// the audit chain verifies.
#[test]
fn rotate_reencrypt_killed_at_random_moments_loses_nothing() {
    const MANY: usize = 2000;
    let env = Env::new();
    let dir = env.sealed_repo("r");
    for i in 0..MANY {
        write_file(&dir, &format!("secrets/f{i:04}.env"), &plain(i));
    }
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "many"]);
    // How long one rotation takes here bounds the random moments.
    let started = std::time::Instant::now();
    env.seal(&dir, &["rotate", "--reencrypt"]);
    let span = started.elapsed().as_millis() as u64 * 6 / 5 + 20;
    let mut moments = Moments::new();
    let mut landed = 0;
    for _ in 0..KILLS {
        landed += usize::from(kill_during(
            &env,
            &dir,
            &["rotate", "--reencrypt"],
            moments.next(span),
        ));
        env.seal(&dir, &["rotate", "--reencrypt"]);
        assert!(!dir.join(".git/seal/lifecycle.json").exists());
        assert!(!dir.join(".git/index.lock").exists());
        let listed = env.git(&dir, &["ls-files", "-s", "--", "secrets"]);
        assert_eq!(listed.lines().count(), MANY, "an index entry was lost");
        let keks: serde_json::Value =
            serde_json::from_str(&env.seal(&dir, &["kek", "list", "--json"])).unwrap();
        let keks = keks["keks"].as_array().unwrap();
        assert!(
            keks.iter().all(|k| k["here"] == true),
            "a key file is gone: {keks:?}"
        );
        let active: Vec<&serde_json::Value> =
            keks.iter().filter(|k| k["status"] == "active").collect();
        assert_eq!(active.len(), 1, "{keks:?}");
        assert_eq!(active[0]["envelopes_index"], MANY, "{keks:?}");
        let kid = active[0]["kid"].as_str().unwrap();
        let verified = env.seal(&dir, &["kek", "verify", kid]);
        assert!(
            verified.contains(&format!(
                "{MANY} envelope(s) in HEAD and the index opened, 0 did not"
            )),
            "{verified}"
        );
        // Every work-tree file through the filter again: each still seals
        // to exactly the staged envelope.
        env.git(&dir, &["update-index", "-q", "--really-refresh"]);
        let status = env.git(&dir, &["status", "--porcelain"]);
        assert!(
            status.lines().all(|l| l.as_bytes()[1] == b' '),
            "the work tree differs from the index:\n{status}"
        );
        for i in (0..MANY).step_by(97) {
            let path = format!("secrets/f{i:04}.env");
            assert_eq!(std::fs::read(dir.join(&path)).unwrap(), plain(i), "{path}");
        }
        assert_chain_verifies(&env, &dir);
    }
    env.git(&dir, &["commit", "-q", "-m", "rotated"]);
    env.ok("git-seal", &dir, &["check"]);
    assert_no_plaintext_objects(&env, &dir);
    assert!(landed > 0, "no kill landed while rotate ran");
}

/// `recipients add` and `recipients remove` of a recovery key, in turn,
/// killed at random moments and run again: every envelope of the index
/// stays openable by the team KEK and ends wrapped exactly as the last
/// command said, with no entry lost and the chain verifying.
#[test]
fn recipients_add_and_remove_killed_at_random_moments_lose_nothing() {
    let env = Env::new();
    let dir = sealed_files_repo(&env);
    let team = env.kid();
    let offline = Env::new();
    let public = offline.seal(offline.tmp.path(), &["kek", "keygen"]);
    let public = public.trim();
    let recovery = offline.kid();
    let add = ["recipients", "add", public];
    let remove = ["recipients", "remove", recovery.as_str()];
    let started = std::time::Instant::now();
    env.seal(&dir, &add);
    env.seal(&dir, &remove);
    let span = started.elapsed().as_millis() as u64 * 3 / 5 + 20;
    let mut moments = Moments::new();
    let mut landed = 0;
    for round in 0..KILLS {
        let (args, wrapped_to_recovery) = if round % 2 == 0 {
            (&add, FILES)
        } else {
            (&remove, 0)
        };
        landed += usize::from(kill_during(&env, &dir, args, moments.next(span)));
        env.seal(&dir, args);
        assert!(!dir.join(".git/seal/lifecycle.json").exists());
        assert!(!dir.join(".git/index.lock").exists());
        let listed = env.git(&dir, &["ls-files", "-s", "--", "secrets"]);
        assert_eq!(listed.lines().count(), FILES, "an index entry was lost");
        let keks: serde_json::Value =
            serde_json::from_str(&env.seal(&dir, &["kek", "list", "--json"])).unwrap();
        let count = |kid: &str| {
            keks["keks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["kid"] == kid)
                .unwrap_or_else(|| panic!("{kid} not listed: {keks}"))["envelopes_index"]
                .clone()
        };
        assert_eq!(count(&team), FILES, "{keks}");
        assert_eq!(count(&recovery), wrapped_to_recovery, "{keks}");
        let verified = env.seal(&dir, &["kek", "verify", &team]);
        assert!(verified.contains(", 0 did not"), "{verified}");
        env.git(&dir, &["update-index", "-q", "--really-refresh"]);
        let status = env.git(&dir, &["status", "--porcelain"]);
        assert!(
            status.lines().all(|l| l.as_bytes()[1] == b' '),
            "the work tree differs from the index:\n{status}"
        );
        assert_chain_verifies(&env, &dir);
    }
    assert_work_tree_complete_after_commit(&env, &dir);
    assert_no_plaintext_objects(&env, &dir);
    assert!(landed > 0, "no kill landed while recipients ran");
}

#[track_caller]
fn assert_work_tree_complete_after_commit(env: &Env, dir: &Path) {
    env.git(dir, &["commit", "-q", "-m", "recipients"]);
    assert_work_tree_complete(env, dir);
    env.ok("git-seal", dir, &["check"]);
}

/// `rotate --provider pkcs11` and `--provider file`, in turn, killed at
/// random moments and run again: every envelope of the index stays, opens
/// with the active KEK, and is wrapped for the custody the clone ends up
/// locked to; no entry is lost and the chain verifies.
#[test]
fn rotate_between_custody_classes_killed_at_random_moments_loses_nothing() {
    let mut env = Env::new();
    let Some(softhsm) = crate::pkcs11::softhsm(&mut env) else {
        return;
    };
    custody_moves_killed_at_random_moments(
        &env,
        [
            (&["rotate", "--provider", "pkcs11"][..], "pkcs11", "hsm"),
            (&["rotate", "--provider", "file"][..], "file", "software"),
        ],
        Some(&softhsm.join("tokens")),
    );
}

/// SoftHSM's file store rewrites a token's own files (`token.object`: its
/// label, PINs and flags; `generation`) in place, on login and whenever an
/// object is made or destroyed: a kill -9 in the middle of that write
/// leaves the token unlisted, which a real HSM never does. What these kill
/// loops test is git-seal's state, so the simulator's token files that a
/// kill cut short are put back as they were before it (objects, the keys,
/// are left exactly as the kill left them).
struct TokenFiles(Vec<(std::path::PathBuf, Vec<u8>)>);

impl TokenFiles {
    fn before_kill(tokens: &Path) -> TokenFiles {
        let mut files = Vec::new();
        for token in std::fs::read_dir(tokens).unwrap() {
            for name in ["token.object", "generation"] {
                let path = token.as_ref().unwrap().path().join(name);
                if let Ok(bytes) = std::fs::read(&path) {
                    files.push((path, bytes));
                }
            }
        }
        TokenFiles(files)
    }

    fn repair_if_cut(&self) {
        for (path, bytes) in &self.0 {
            let now = std::fs::metadata(path).map_or(0, |m| m.len() as usize);
            if now < bytes.len() {
                eprintln!("the kill cut SoftHSM's {} short; put back", path.display());
                std::fs::write(path, bytes).unwrap();
            }
        }
    }
}

/// The same between key files and a KEK that a KMS key guards (moto on
/// loopback): the KEK made by a killed run exists only as the record in
/// the journal until the rerun writes it.
#[test]
fn rotate_into_and_out_of_kms_killed_at_random_moments_loses_nothing() {
    let mut env = Env::new();
    let Some(moto) = crate::kms::kms(&mut env) else {
        return;
    };
    let key = moto.create_key();
    custody_moves_killed_at_random_moments(
        &env,
        [
            (
                &["rotate", "--provider", "aws-kms", "--kms-key", &key][..],
                "aws-kms",
                "kms",
            ),
            (&["rotate", "--provider", "file"][..], "file", "software"),
        ],
        None,
    );
}

/// Each of `moves` (its arguments, the provider it locks the clone to, and
/// the custody of the KEK it makes) in turn, killed at a random moment and
/// run again, checking that nothing was lost.
fn custody_moves_killed_at_random_moments(
    env: &Env,
    moves: [(&[&str], &str, &str); 2],
    softhsm_tokens: Option<&Path>,
) {
    let dir = sealed_files_repo(env);
    let started = std::time::Instant::now();
    for (args, _, _) in &moves {
        env.seal(&dir, args);
    }
    let span = started.elapsed().as_millis() as u64 * 3 / 5 + 20;
    let mut moments = Moments::new();
    let mut landed = 0;
    for round in 0..KILLS / 2 {
        let (args, provider, custody) = moves[round % 2];
        let token_files = softhsm_tokens.map(TokenFiles::before_kill);
        landed += usize::from(kill_during(env, &dir, args, moments.next(span)));
        if let Some(files) = &token_files {
            files.repair_if_cut();
        }
        env.seal(&dir, args);
        assert!(!dir.join(".git/seal/lifecycle.json").exists());
        assert_eq!(env.git(&dir, &["config", "seal.provider"]).trim(), provider);
        let listed = env.git(&dir, &["ls-files", "-s", "--", "secrets"]);
        assert_eq!(listed.lines().count(), FILES, "an index entry was lost");
        let keks: serde_json::Value =
            serde_json::from_str(&env.seal(&dir, &["kek", "list", "--json"])).unwrap();
        let keks = keks["keks"].as_array().unwrap();
        let active: Vec<&serde_json::Value> =
            keks.iter().filter(|k| k["status"] == "active").collect();
        assert_eq!(active.len(), 1, "{keks:?}");
        assert_eq!(active[0]["custody"], custody, "{keks:?}");
        assert_eq!(active[0]["envelopes_index"], FILES, "{keks:?}");
        let kid = active[0]["kid"].as_str().unwrap();
        let verified = env.seal(&dir, &["kek", "verify", kid]);
        assert!(verified.contains(", 0 did not"), "{verified}");
        for i in (0..FILES).step_by(37) {
            let stored = env.envelope_at(&dir, &format!(":secrets/f{i:04}.env"));
            assert_eq!(stored["recipients"][0]["kid"], kid, "{stored}");
        }
        env.git(&dir, &["update-index", "-q", "--really-refresh"]);
        let status = env.git(&dir, &["status", "--porcelain"]);
        assert!(
            status.lines().all(|l| l.as_bytes()[1] == b' '),
            "the work tree differs from the index:\n{status}"
        );
        for i in 0..FILES {
            let path = format!("secrets/f{i:04}.env");
            assert_eq!(std::fs::read(dir.join(&path)).unwrap(), plain(i), "{path}");
        }
        assert_chain_verifies(env, &dir);
    }
    env.git(&dir, &["commit", "-q", "-m", "rotated"]);
    env.ok("git-seal", &dir, &["check"]);
    assert_no_plaintext_objects(env, &dir);
    assert!(landed > 0, "no kill landed while rotate ran");
}

/// A `kill -9` while the install lock moves can leave Git's config.lock
/// behind: the rerun (here any command that writes the clone's config)
/// removes a lock that nobody is writing, and goes on.
#[test]
fn a_config_lock_left_by_a_kill_does_not_block_the_rerun() {
    let env = Env::new();
    let dir = env.repo("r");
    std::fs::write(dir.join(".git/config.lock"), b"").unwrap();
    env.seal(&dir, &["init", "secrets/**"]);
    assert!(!dir.join(".git/config.lock").exists());
    assert_eq!(env.git(&dir, &["config", "seal.provider"]).trim(), "file");
}

/// `decrypt --out` writes a temporary file beside its output and renames
/// it into place once the tag verifies: killed at any moment, the output
/// is the earlier file or the whole plaintext, never a part, no part of
/// the plaintext is left in a temporary file, and the rerun opens the
/// envelope.
#[test]
fn decrypt_to_a_file_killed_at_random_moments_leaves_the_old_file_or_the_new() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let plain: Vec<u8> = (0..16 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    write_file(&dir, "big.bin", &plain);
    env.seal(&dir, &["encrypt", "big.bin", "--out", "big.sealed"]);
    let args = ["decrypt", "big.sealed", "--out", "result"];
    // Kill moments spread over about one whole run.
    let started = std::time::Instant::now();
    env.seal(&dir, &args);
    let whole = started.elapsed().as_millis() as u64 + 1;
    let mut moments = Moments::new();
    let mut landed = 0;
    for _ in 0..KILLS {
        write_file(&dir, "result", b"earlier");
        landed += usize::from(kill_during(&env, &dir, &args, moments.next(whole)));
        let result = std::fs::read(dir.join("result")).unwrap();
        assert!(
            result == b"earlier" || result == plain,
            "result is neither the earlier file nor the plaintext ({} bytes)",
            result.len()
        );
    }
    assert!(landed > 0, "no kill landed while decrypt ran");
    env.seal(&dir, &args);
    assert!(std::fs::read(dir.join("result")).unwrap() == plain);
    // The temporary file has a name only once whole (Linux): a kill
    // leaves none, or (between naming and renaming) a whole one.
    for name in crate::harness::names_starting(&dir, ".git-seal-") {
        let temp = std::fs::metadata(dir.join(&name)).unwrap();
        assert_eq!(temp.permissions().mode() & 0o777, 0o600, "{name}");
        if cfg!(target_os = "linux") {
            let content = std::fs::read(dir.join(&name)).unwrap();
            assert!(content == plain, "{name}: a partial temporary file");
        }
    }
}

/// `git seal init` killed at random moments in fresh repositories: the
/// rerun sets the repository up, and every key file in the key directory,
/// from any run, is a whole key (written unnamed, then linked).
#[test]
fn init_killed_at_random_moments_leaves_only_whole_key_files() {
    let env = Env::new();
    let mut moments = Moments::new();
    let mut landed = 0;
    for i in 0..KILLS {
        let dir = env.repo(&format!("r{i}"));
        landed += usize::from(kill_during(
            &env,
            &dir,
            &["init", "secrets/**"],
            moments.next(150),
        ));
        env.seal(&dir, &["init", "secrets/**"]);
        write_file(&dir, "secrets/s.env", b"s\n");
        env.git(&dir, &["add", "-A"]);
        let stored = env
            .ok("git", &dir, &["cat-file", "-p", ":secrets/s.env"])
            .stdout;
        assert!(is_envelope(&stored), "r{i}: not sealed after the rerun");
        for entry in std::fs::read_dir(&env.key_dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let hex = text
                .strip_suffix('\n')
                .unwrap_or_else(|| panic!("{}: {text:?}", path.display()));
            assert!(
                hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
                "{}: not a whole key",
                path.display()
            );
        }
    }
    assert!(landed > 0, "no kill landed while init ran");
}
