//! `.seal/policy.json` and `.gitattributes` parsing on arbitrary UTF-8:
//! never a panic, and the questions a parsed policy answers never panic
//! either. A policy that parses writes back to text that parses to the
//! same file. The policy is parsed as `.seal/keys/` were empty (`&[]`) and
//! again knowing every kid it names, so recipient scopes get compiled.

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

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let _ = Policy::parse(text, &[]);
        let known: Vec<Kid> = serde_json::from_str::<PolicyFile>(text)
            .map(|f| f.recipients.into_iter().flat_map(|s| s.kids).collect())
            .unwrap_or_default();
        if let Ok(p) = Policy::parse(text, &known) {
            for path in PATHS {
                let _ = p.never_commit_glob(path);
                let _ = p.recipients_for(path);
                let _ = p.aad_for(path);
                let _ = policy::must_seal(&p, path, |_| Ok::<_, ()>(false));
            }
            let written = p.to_text();
            let again = Policy::parse(&written, &known).expect("written policy parses");
            assert_eq!(again.file, p.file, "round trip changed the policy");
        }
        let attrs = SealAttributes::parse(text);
        for path in PATHS {
            let _ = attrs.seals(path);
        }
        // Each line's first word as a path too: patterns meet their own text.
        for line in text.lines().take(16) {
            if let Some(word) = line.split_whitespace().next() {
                let _ = attrs.seals(word);
                let _ = policy::pattern_matches(word, word);
                let _ = policy::normalize_pattern(word, |p| p.len() % 2 == 0);
            }
        }
    });
}
