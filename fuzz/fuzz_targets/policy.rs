//! `.seal/policy.json` and `.gitattributes` parsing on arbitrary UTF-8:
//! never a panic, and the questions a parsed policy answers never panic
//! either. A policy that parses writes back to text that parses to the
//! same file. The policy is parsed as `.seal/keys/` were empty (`&[]`) and,
//! when it names kids, again knowing them, so recipient scopes get compiled.
//!
//! Every glob costs a regex compilation, which dominates an execution:
//! the target compiles only what the parsers themselves compile. Inputs
//! past [`MAX_INPUT`] are skipped: a 31 KB glob took 5.7 s an execution
//! under AFL's instrumentation (under 0.1 s uninstrumented), which held
//! the first campaign at one execution a second for its last hour.

use git_seal::kid::Kid;
use git_seal::policy::{self, Policy, PolicyFile, SealAttributes};

const PATHS: &[&str] = &[
    "",
    "a",
    "secrets/a.env",
    "deep/dir/prod.env",
    ".seal/policy.json",
    ".gitattributes",
    "k_0123456789abcdef.key",
    "x/k_0123456789abcdef.key",
    "/abs",
    "dir/",
    "ü/\u{0}/[x]",
];

/// Longer than any policy or `.gitattributes` the parsers are likely to
/// meet, short enough that every execution stays fast.
const MAX_INPUT: usize = 4096;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if data.len() > MAX_INPUT {
            return;
        }
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let mut parsed = Policy::parse(text, &[]);
        if matches!(parsed, Err(policy::PolicyError::UnknownKid { .. })) {
            let known: Vec<Kid> = serde_json::from_str::<PolicyFile>(text)
                .map(|f| f.recipients.into_iter().flat_map(|s| s.kids).collect())
                .expect("a policy with an unknown kid is valid JSON");
            parsed = Policy::parse(text, &known)
                .map(|p| (p, known))
                .map(|(p, k)| {
                    let written = p.to_text();
                    let again = Policy::parse(&written, &k).expect("written policy parses");
                    assert_eq!(again.file, p.file, "round trip changed the policy");
                    p
                });
        } else if let Ok(p) = &parsed {
            let again = Policy::parse(&p.to_text(), &[]).expect("written policy parses");
            assert_eq!(again.file, p.file, "round trip changed the policy");
        }
        if let Ok(p) = parsed {
            for path in PATHS {
                let _ = p.never_commit_glob(path);
                let _ = p.recipients_for(path);
                let _ = p.aad_for(path);
                let _ = policy::must_seal(&p, path, |_| Ok::<_, ()>(false));
            }
        }
        let attrs = SealAttributes::parse(text);
        for path in PATHS {
            let _ = attrs.seals(path);
        }
        // Each line's first word as a path too: patterns meet their own text.
        for line in text.lines().take(16) {
            if let Some(word) = line.split_whitespace().next() {
                let _ = attrs.seals(word);
                let _ = policy::normalize_pattern(word, |p| p.len() % 2 == 0);
            }
        }
    });
}
