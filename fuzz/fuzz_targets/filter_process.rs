//! The long-running filter process (`filter::process::serve`) fed arbitrary
//! bytes as Git's side of the conversation, its answers going to a sink. It
//! must never panic (a panic on a worker thread counts too: `afl::fuzz!`'s
//! panic hook aborts before git-seal's pool can catch it) and never hang
//! (AFL's timeout reports a hang).
//!
//! The filter runs outside any repository, as `git seal filter-process`
//! does before `.seal/` is checked out: clean refuses (no project), smudge
//! opens with the `file` provider. Its key directory is made once, holding
//! the first key of the conformance vectors (tests/vectors/envelope-v1), so
//! smudging a vector really unwraps and decrypts. The seeds in
//! `corpus/filter_process/` are real sessions: handshake, capabilities,
//! then clean, smudge, delayed smudge and `list_available_blobs`.

use std::os::unix::fs::PermissionsExt;

use git_seal::filter::{process, Filter};

/// `k_b3b9e069a8d3a8c9` of tests/vectors/envelope-v1/keys.json: test data,
/// never a real secret.
const VECTOR_KID: &str = "k_b3b9e069a8d3a8c9";
const VECTOR_KEY: &str = "8d56d558cdb694526393aff471ce40cbed74c6e66f4ac04d0e80de8a3c70bbce";

/// A working directory outside any repository and a key directory with
/// the vector key; the process keeps both for its life.
fn setup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temp dir");
    let keys = tmp.path().join("keys");
    std::fs::create_dir(&keys).expect("key dir");
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let key = keys.join(format!("{VECTOR_KID}.key"));
    std::fs::write(&key, format!("{VECTOR_KEY}\n")).expect("key file");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).expect("work dir");
    std::env::set_current_dir(&work).expect("cd");
    // Hermetic: no repository from the environment or above the temp dir,
    // no user or system Git config, the key directory above.
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_COMMON_DIR",
    ] {
        std::env::remove_var(var);
    }
    std::env::set_var("GIT_CEILING_DIRECTORIES", tmp.path());
    std::env::set_var("GIT_CONFIG_NOSYSTEM", "1");
    std::env::set_var("GIT_CONFIG_GLOBAL", "/dev/null");
    std::env::set_var("GIT_SEAL_KEY_DIR", &keys);
    tmp
}

fn main() {
    let _tmp = setup();
    afl::fuzz!(|data: &[u8]| {
        let mut filter = Filter::from_env();
        let _ = process::serve(data, std::io::sink(), &mut filter);
    });
}
