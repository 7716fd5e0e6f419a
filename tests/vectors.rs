//! Conformance: every vector in shared/vectors/envelope-v1/ (copied to
//! tests/vectors/envelope-v1/), made by an
//! independent implementation. Valid ones open to the exact bytes with only
//! the listed keys and re-write byte-identical; invalid ones are refused.

use std::fs;
use std::path::PathBuf;

use git_seal::envelope;
use git_seal::keys::software::SoftwareKeys;
use git_seal::keys::{open, open_bytes, open_into, seal_bytes, OpenError, WrapTarget};
use git_seal::kid::Kid;
use git_seal::secret::KekSecret;

/// The vectors, copied into the repository (tests/vectors/envelope-v1) so
/// that a clone tests on its own. Where the shared originals are beside the
/// checkout (../shared/vectors/envelope-v1), the copy must equal them.
fn vectors_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/vectors/envelope-v1");
    assert!(
        dir.is_dir(),
        "conformance vectors missing at {}",
        dir.display()
    );
    let shared = root.join("../shared/vectors/envelope-v1");
    if shared.is_dir() {
        assert_eq!(
            listing(&shared),
            listing(&dir),
            "tests/vectors/envelope-v1 differs from {}; copy it again",
            shared.display()
        );
    }
    dir
}

/// Every file under `dir`, by relative path, with its bytes.
fn listing(dir: &std::path::Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = fs::read(&path).unwrap();
                files.push((path.strip_prefix(dir).unwrap().to_owned(), bytes));
            }
        }
    }
    files.sort();
    files
}

fn all_keys() -> Vec<(Kid, KekSecret)> {
    let text = fs::read_to_string(vectors_dir().join("keys.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let secret = KekSecret::from_hex(k["private_hex"].as_str().unwrap()).unwrap();
            let kid = Kid::parse(k["kid"].as_str().unwrap()).unwrap();
            assert_eq!(Kid::of_x25519(&secret.public()), kid, "kid derivation");
            (kid, secret)
        })
        .collect()
}

fn names(sub: &str) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(vectors_dir().join(sub))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".envelope").map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

#[test]
fn valid_vectors_open_with_listed_keys_only_and_rewrite_identically() {
    let keys = all_keys();
    let names = names("valid");
    assert!(
        names.len() >= 10,
        "expected the valid vectors, found {names:?}"
    );
    for name in names {
        let dir = vectors_dir().join("valid");
        let text = fs::read(dir.join(format!("{name}.envelope"))).unwrap();
        let plain = fs::read(dir.join(format!("{name}.plain"))).unwrap();
        let listed: Vec<Kid> = fs::read_to_string(dir.join(format!("{name}.keys")))
            .unwrap()
            .split_whitespace()
            .map(|k| Kid::parse(k).unwrap())
            .collect();
        let holder = SoftwareKeys::new(
            "test",
            keys.iter()
                .filter(|(k, _)| listed.contains(k))
                .map(|(_, s)| s.clone())
                .collect(),
        );
        let parsed = envelope::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            envelope::write(&parsed),
            text,
            "{name}: not re-written byte-identical"
        );
        let opened = open(parsed, &holder).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(opened, plain, "{name}: wrong plaintext");
        // Keys that are not listed must not open it.
        let others = SoftwareKeys::new(
            "test",
            keys.iter()
                .filter(|(k, _)| !listed.contains(k))
                .map(|(_, s)| s.clone())
                .collect(),
        );
        let env = envelope::parse(&text).unwrap();
        let wrapped_to: Vec<Kid> = env.recipients.iter().map(|r| r.kid.clone()).collect();
        if !keys
            .iter()
            .any(|(k, _)| wrapped_to.contains(k) && !listed.contains(k))
        {
            assert!(
                open(env, &others).is_err(),
                "{name}: opened without a listed key"
            );
        }
    }
}

#[test]
fn invalid_vectors_are_refused_by_the_first_key() {
    let keys = all_keys();
    let holder = SoftwareKeys::new("test", vec![keys[0].1.clone()]);
    let names = names("invalid");
    assert!(
        names.len() >= 15,
        "expected the invalid vectors, found {names:?}"
    );
    for name in names {
        let text = fs::read(
            vectors_dir()
                .join("invalid")
                .join(format!("{name}.envelope")),
        )
        .unwrap();
        let result: Result<Vec<u8>, OpenError> = open_bytes(&text, &holder);
        assert!(result.is_err(), "{name}: was accepted");
    }
}

/// Opening as the text is read (`decrypt --out`) agrees with opening it
/// whole: every valid vector gives its plaintext, every invalid one the
/// same error.
#[test]
fn opening_as_it_is_read_agrees_with_opening_whole() {
    let keys = all_keys();
    let every = SoftwareKeys::new("test", keys.iter().map(|(_, s)| s.clone()).collect());
    let first = SoftwareKeys::new("test", vec![keys[0].1.clone()]);
    for (kind, holder) in [("valid", &every), ("invalid", &first)] {
        for name in names(kind) {
            let dir = vectors_dir().join(kind);
            let text = fs::read(dir.join(format!("{name}.envelope"))).unwrap();
            let whole = open_bytes(&text, holder).map_err(|e| e.to_string());
            let mut out = Vec::new();
            let streamed = open_into(&mut &text[..], holder, &mut out).map_err(|e| e.to_string());
            match (whole, streamed) {
                (Ok(plain), Ok(())) => assert!(out == plain, "{kind}/{name}: plaintext differs"),
                (Err(a), Err(b)) => assert_eq!(a, b, "{kind}/{name}"),
                (a, b) => panic!("{kind}/{name}: whole {a:?}, as read {b:?}"),
            }
        }
    }
}

#[test]
fn our_envelopes_rewrite_identically_after_parse() {
    let keys = all_keys();
    let target = WrapTarget::x25519(keys[1].1.public());
    let text = seal_bytes(b"abc\r\n\x00\xff".to_vec(), Some("ctx ✓".into()), &[target]).unwrap();
    assert_eq!(envelope::write(&envelope::parse(&text).unwrap()), text);
}
