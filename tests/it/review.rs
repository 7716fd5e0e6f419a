//! `git seal review`: each category on a real history, with and without
//! a key; the default range; Markdown for a pull request; odd path names.

use std::path::Path;

use serde_json::Value;

use crate::harness::{stderr, stdout, write_file, Env};

/// `git seal review --json ARGS` in `dir`: the document and the exit code.
#[track_caller]
fn review_json(env: &Env, dir: &Path, args: &[&str]) -> (Value, i32) {
    let mut all = vec!["review", "--json"];
    all.extend_from_slice(args);
    let out = env.run("git-seal", dir, &all, None);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "`git seal {}`: not JSON ({e}):\n{}{}",
            all.join(" "),
            stdout(&out),
            stderr(&out)
        )
    });
    assert_eq!(doc["schema"], "git-seal.review/v1");
    (doc, out.status.code().unwrap())
}

/// (path, category) of every reviewed path, in order.
fn categories(doc: &Value) -> Vec<(String, String)> {
    doc["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["path"].as_str().unwrap().to_owned(),
                p["category"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn entry<'a>(doc: &'a Value, path: &str) -> &'a Value {
    doc["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"] == path)
        .unwrap_or_else(|| panic!("{path} is not reviewed: {doc:#}"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// Write `files` and commit them through the filter and the hooks.
fn commit_these(env: &Env, dir: &Path, files: &[(&str, &str)], message: &str) {
    for (path, text) in files {
        write_file(dir, path, text.as_bytes());
    }
    env.git(dir, &["add", "-A"]);
    env.git(dir, &["commit", "-q", "-m", message]);
}

/// A commit that does one thing of each kind to `secrets/`, committed
/// with `--no-verify` (as a client that runs no hooks would), after two
/// ordinary commits. Returns the first commit (which holds `e.env`'s
/// first version).
fn history_of_every_kind(env: &Env, dir: &Path) -> String {
    let files = [
        ("secrets/a.env", "one\ntwo\nthree\n"),
        ("secrets/b.env", "B=1\n"),
        ("secrets/c.env", "C=1\n"),
        ("secrets/d.env", "D=1\n"),
        ("secrets/e.env", "E=1\n"),
        ("secrets/f.env", "F=1\n"),
        ("secrets/g.env", "G=1\n"),
        ("secrets/h.env", "H=1\n"),
    ];
    commit_these(env, dir, &files, "secrets");
    let first = env.rev(dir, "HEAD");
    commit_these(env, dir, &[("secrets/e.env", "E=2\n")], "e changes");

    // content: an ordinary edit through the filter.
    write_file(dir, "secrets/a.env", b"one\nTWO\nthree\nfour\n");
    // sealed: a new file through the filter.
    write_file(dir, "secrets/n.env", b"N=1\nN=2\n");
    env.git(dir, &["add", "secrets/a.env", "secrets/n.env"]);
    // plaintext: a leak staged with no filter.
    env.stage_raw(dir, "secrets/leak.env", b"PASSWORD=hunter2\n");
    // reverted: e.env's first envelope again.
    let cacheinfo = |id: &str, path: &str| {
        let info = format!("100644,{id},{path}");
        env.git(dir, &["update-index", "--add", "--cacheinfo", &info]);
    };
    cacheinfo(
        &env.rev(dir, &format!("{first}:secrets/e.env")),
        "secrets/e.env",
    );
    // moved: c.env and d.env swap envelopes.
    let (c, d) = (
        env.rev(dir, "HEAD:secrets/c.env"),
        env.rev(dir, "HEAD:secrets/d.env"),
    );
    cacheinfo(&d, "secrets/c.env");
    cacheinfo(&c, "secrets/d.env");
    // unsealed: an envelope replaced by plaintext.
    env.stage_raw(dir, "secrets/f.env", b"F=plain\n");
    // malformed: an envelope with its tag removed.
    let mut broken = env.envelope_at(dir, "HEAD:secrets/g.env");
    broken.as_object_mut().unwrap().remove("tag");
    let broken = serde_json::to_string_pretty(&broken).unwrap();
    env.stage_raw(dir, "secrets/g.env", broken.as_bytes());
    // deleted.
    env.git(dir, &["rm", "-q", "secrets/h.env"]);
    env.git(dir, &["commit", "-q", "--no-verify", "-m", "one of each"]);
    first
}

const EVERY_KIND: [(&str, &str); 9] = [
    ("secrets/a.env", "content"),
    ("secrets/c.env", "moved"),
    ("secrets/d.env", "moved"),
    ("secrets/e.env", "reverted"),
    ("secrets/f.env", "unsealed"),
    ("secrets/g.env", "malformed"),
    ("secrets/h.env", "deleted"),
    ("secrets/leak.env", "plaintext"),
    ("secrets/n.env", "sealed"),
];

fn expected_categories() -> Vec<(String, String)> {
    EVERY_KIND
        .iter()
        .map(|(p, c)| (p.to_string(), c.to_string()))
        .collect()
}

/// Line counts by path (`None`: null).
fn lines_of(doc: &Value) -> Vec<(String, Option<(u64, u64)>)> {
    doc["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let lines = &p["lines"];
            let counts = (!lines.is_null()).then(|| {
                (
                    lines["added"].as_u64().unwrap(),
                    lines["removed"].as_u64().unwrap(),
                )
            });
            (p["path"].as_str().unwrap().to_owned(), counts)
        })
        .collect()
}

#[test]
fn each_category_is_classified_exactly_with_the_key_and_without() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let kid = env.kid();
    let first = history_of_every_kind(&env, &dir);
    let tip = env.rev(&dir, "HEAD");

    let (doc, code) = review_json(&env, &dir, &["HEAD"]);
    assert_eq!(code, 1, "findings exit 1: {doc:#}");
    assert_eq!(categories(&doc), expected_categories(), "{doc:#}");
    assert_eq!(doc["findings"], 3);
    let findings: Vec<&str> = doc["paths"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["finding"] == true)
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        findings,
        ["secrets/f.env", "secrets/g.env", "secrets/leak.env"]
    );
    assert_eq!(doc["range"]["base"], env.rev(&dir, "HEAD~1"));
    assert_eq!(doc["range"]["tip"], tip);
    assert_eq!(doc["range"]["how"], "given");
    assert_eq!(entry(&doc, "secrets/c.env")["from_path"], "secrets/d.env");
    assert_eq!(entry(&doc, "secrets/d.env")["from_path"], "secrets/c.env");
    assert_eq!(entry(&doc, "secrets/e.env")["reverted_to"], first);
    assert_eq!(
        entry(&doc, "secrets/e.env")["new_blob"],
        env.rev(&dir, &format!("{first}:secrets/e.env"))
    );
    assert_eq!(entry(&doc, "secrets/h.env")["new_blob"], Value::Null);
    assert_eq!(
        strings(&entry(&doc, "secrets/n.env")["kids"]),
        [kid.as_str()]
    );
    assert_eq!(strings(&entry(&doc, "secrets/h.env")["kids"]), [kid]);
    for path in ["secrets/f.env", "secrets/g.env", "secrets/leak.env"] {
        let message = entry(&doc, path)["message"].as_str().unwrap();
        let fix = ["`git add ", "`git add --renormalize "].map(|c| format!("{c}{path}`"));
        assert!(fix.iter().any(|f| message.contains(f)), "{message}");
    }
    let with_key = |p: &str, lines: Option<(u64, u64)>| (p.to_owned(), lines);
    assert_eq!(
        lines_of(&doc),
        [
            with_key("secrets/a.env", Some((2, 1))),
            with_key("secrets/c.env", Some((1, 1))),
            with_key("secrets/d.env", Some((1, 1))),
            with_key("secrets/e.env", Some((1, 1))),
            with_key("secrets/f.env", Some((1, 1))),
            with_key("secrets/g.env", None),
            with_key("secrets/h.env", Some((0, 1))),
            with_key("secrets/leak.env", Some((1, 0))),
            with_key("secrets/n.env", Some((2, 0))),
        ]
    );

    // The same without any key: only plaintext sides are counted.
    let hidden = env.hide_keys();
    let (doc, code) = review_json(&env, &dir, &["HEAD"]);
    let text = env.fails("git-seal", &dir, &["review"], 1);
    env.restore_keys(&hidden);
    assert_eq!(code, 1);
    assert_eq!(categories(&doc), expected_categories(), "{doc:#}");
    assert_eq!(doc["findings"], 3);
    for (path, lines) in lines_of(&doc) {
        let expected = (path == "secrets/leak.env").then_some((1, 0));
        assert_eq!(lines, expected, "{path} without a key");
    }
    // One line per path in text, with the range first and a summary last.
    let text = stdout(&text);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), EVERY_KIND.len() + 2, "{text}");
    assert!(
        lines[0].starts_with(&format!(
            "review {}..{} (",
            &env.rev(&dir, "HEAD~1")[..12],
            &tip[..12]
        )),
        "{text}"
    );
    assert!(lines[0].contains("HEAD against its parent"), "{text}");
    for ((path, category), line) in EVERY_KIND.iter().zip(&lines[1..]) {
        assert!(
            line.starts_with(&format!("{category:<9} {path}")),
            "{line:?} in\n{text}"
        );
    }
    assert!(lines[2].ends_with("from secrets/d.env"), "{text}");
    assert!(
        lines[4].contains(&format!("same blob as in {}", &first[..12])),
        "{text}"
    );
    assert!(
        lines[5].contains("  finding: was an envelope and is plaintext now"),
        "{text}"
    );
    assert_eq!(lines[10], "3 findings in 9 sealed paths changed");
}

#[test]
fn plaintext_shows_only_with_diff_and_never_in_json_or_markdown() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    history_of_every_kind(&env, &dir);
    for args in [
        &["review"][..],
        &["review", "--json"],
        &["review", "--markdown"],
    ] {
        let out = env.fails("git-seal", &dir, args, 1);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        for secret in ["hunter2", "TWO", "F=plain", "E=1", "N=2"] {
            assert!(!text.contains(secret), "{args:?} printed {secret}:\n{text}");
        }
    }
    let out = stdout(&env.fails("git-seal", &dir, &["review", "--diff"], 1));
    for shown in [
        "--- a/secrets/a.env\n+++ b/secrets/a.env\n@@ -1,3 +1,4 @@\n one\n-two\n+TWO\n three\n+four\n",
        "--- /dev/null\n+++ b/secrets/leak.env\n@@ -0,0 +1 @@\n+PASSWORD=hunter2\n",
        "--- a/secrets/h.env\n+++ /dev/null\n@@ -1 +0,0 @@\n-H=1\n",
        "-E=2\n+E=1\n",
        "-F=1\n+F=plain\n",
    ] {
        assert!(out.contains(shown), "--diff lacks {shown:?}:\n{out}");
    }
    assert!(
        out.contains("secrets/g.env\n    (no plaintext diff: it is not a valid envelope)")
            || out.contains("(no plaintext diff: it is not a valid envelope)"),
        "{out}"
    );
    let hidden = env.hide_keys();
    let out = stdout(&env.fails("git-seal", &dir, &["review", "--diff"], 1));
    env.restore_keys(&hidden);
    assert!(!out.contains("TWO"), "{out}");
    assert!(
        out.contains("(no plaintext diff: no key here opens it)"),
        "{out}"
    );
    // --diff prints secrets: never into JSON or a pull-request comment.
    env.fails("git-seal", &dir, &["review", "--diff", "--json"], 2);
    env.fails("git-seal", &dir, &["review", "--diff", "--markdown"], 2);
}

#[test]
fn rotate_and_an_added_recipient_are_rewraps_that_name_the_kids() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let old = env.kid();
    let files = [("secrets/s.env", "S=1\n"), ("secrets/t.env", "T=1\n")];
    commit_these(&env, &dir, &files, "secrets");
    let before = env.rev(&dir, "HEAD");

    env.seal(&dir, &["rotate"]);
    env.git(&dir, &["commit", "-q", "-m", "rotate"]);
    let new = env.kid();
    assert_ne!(new, old);
    let (doc, code) = review_json(&env, &dir, &[]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["findings"], 0);
    for path in ["secrets/s.env", "secrets/t.env"] {
        let e = entry(&doc, path);
        assert_eq!(e["category"], "rewrap", "{doc:#}");
        assert_eq!(strings(&e["kids_added"]), [new.as_str()]);
        assert_eq!(strings(&e["kids_removed"]), [old.as_str()]);
        assert_eq!(strings(&e["kids"]), [new.as_str()]);
        assert_eq!(e["lines"], serde_json::json!({"added": 0, "removed": 0}));
    }

    let mate_env = Env::new();
    let public = mate_env
        .seal(mate_env.tmp.path(), &["kek", "keygen"])
        .trim()
        .to_owned();
    let mate = mate_env.kid();
    env.seal(&dir, &["recipients", "add", &public, "--name", "mate"]);
    env.git(&dir, &["commit", "-q", "-m", "a teammate"]);
    let (doc, _) = review_json(&env, &dir, &[]);
    assert_eq!(categories(&doc).len(), 2, "{doc:#}");
    for path in ["secrets/s.env", "secrets/t.env"] {
        let e = entry(&doc, path);
        assert_eq!(e["category"], "rewrap");
        assert_eq!(strings(&e["kids_added"]), [mate.as_str()]);
        assert_eq!(strings(&e["kids_removed"]), Vec::<String>::new());
        assert_eq!(strings(&e["kids"]), [new.as_str(), mate.as_str()]);
    }
    // Both steps at once, as `A..B`.
    let (doc, _) = review_json(&env, &dir, &[&format!("{before}..HEAD")]);
    let e = entry(&doc, "secrets/s.env");
    assert_eq!(e["category"], "rewrap");
    assert_eq!(strings(&e["kids_added"]), [new.as_str(), mate.as_str()]);
    assert_eq!(strings(&e["kids_removed"]), [old.as_str()]);
    let text = env.seal(&dir, &["review", &format!("{before}..HEAD")]);
    assert!(
        text.contains(&format!(
            "rewrap    secrets/s.env  +0 -0  kids +{new} +{mate} -{old}"
        )),
        "{text}"
    );

    // An edit after it: new ciphertext, the same recipients.
    commit_these(&env, &dir, &[("secrets/s.env", "S=2\nS=3\n")], "edit");
    let (doc, _) = review_json(&env, &dir, &[]);
    assert_eq!(
        categories(&doc),
        [("secrets/s.env".into(), "content".into())]
    );
    let e = entry(&doc, "secrets/s.env");
    assert_eq!(e["lines"], serde_json::json!({"added": 2, "removed": 1}));
    assert_eq!(strings(&e["kids_added"]), Vec::<String>::new());
}

/// Split a Markdown table row into its cells at pipes that are not escaped.
fn cells(row: &str) -> Vec<String> {
    let mut cells = vec![String::new()];
    let mut escaped = false;
    for c in row.chars() {
        if c == '|' && !escaped {
            cells.push(String::new());
        } else {
            cells.last_mut().unwrap().push(c);
        }
        escaped = c == '\\' && !escaped;
    }
    cells
}

#[test]
fn markdown_is_one_row_per_path_whatever_the_names_hold() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    write_file(&dir, "secrets/plain.env", b"P=1\n");
    write_file(&dir, "secrets/new\nline.env", b"N=1\n");
    write_file(&dir, "secrets/pipe|and`tick.env", b"T=1\n");
    env.git(&dir, &["add", "secrets"]);
    // A leaked name that tries to forge a row of its own.
    env.stage_raw(&dir, "secrets/x\n| `forged` | content | |.env", b"X=1\n");
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "odd names"]);

    let out = env.fails("git-seal", &dir, &["review", "--markdown"], 1);
    let md = stdout(&out);
    let rows: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
    assert_eq!(rows.len(), 2 + 4, "a header, a rule and four paths:\n{md}");
    for row in &rows {
        assert!(row.ends_with(" |"), "{row:?}");
        assert_eq!(cells(row).len(), 5, "three cells in {row:?}");
    }
    assert_eq!(rows[0], "| path | change | details |");
    assert!(md.starts_with("#### git seal review of `"), "{md}");
    assert!(
        md.contains("**1 finding** in 4 sealed paths changed"),
        "{md}"
    );
    let row_of = |start: &str| {
        rows.iter()
            .find(|r| r.starts_with(start))
            .unwrap_or_else(|| panic!("no row starting {start:?}:\n{md}"))
    };
    row_of("| `secrets/new\\nline.env` | sealed | +1 -0; to `k_");
    row_of("| ``secrets/pipe\\|and`tick.env`` | sealed |");
    row_of("| `secrets/plain.env` | sealed |");
    let forged = row_of("| ``secrets/x\\n\\| `forged` \\| content \\| \\|.env`` | plaintext |");
    assert!(forged.contains("**finding**"), "{forged}");

    // Text: one line per path, the newline escaped; JSON keeps the name.
    let text = stdout(&env.fails("git-seal", &dir, &["review"], 1));
    assert_eq!(text.lines().count(), 4 + 2, "{text}");
    assert!(
        text.contains("\nsealed    secrets/new\\nline.env  +1 -0"),
        "{text}"
    );
    let (doc, _) = review_json(&env, &dir, &[]);
    entry(&doc, "secrets/new\nline.env");
    entry(&doc, "secrets/pipe|and`tick.env");
}

#[test]
fn default_range_is_the_upstream_merge_base_else_the_parent_else_the_root() {
    let env = Env::new();
    let (dir, _server) = env.served_repo("r");
    env.git(&dir, &["branch", "-q", "--set-upstream-to", "origin/main"]);
    let pushed = env.rev(&dir, "origin/main");
    commit_these(&env, &dir, &[("secrets/one.env", "1")], "one");
    commit_these(&env, &dir, &[("secrets/two.env", "2")], "two");
    let (doc, code) = review_json(&env, &dir, &[]);
    assert_eq!(code, 0);
    assert_eq!(doc["range"]["how"], "upstream");
    assert_eq!(doc["range"]["upstream"], "origin/main");
    assert_eq!(doc["range"]["base"], pushed);
    assert_eq!(doc["range"]["spec"], Value::Null);
    assert_eq!(
        categories(&doc),
        [
            ("secrets/one.env".into(), "sealed".into()),
            ("secrets/two.env".into(), "sealed".into())
        ]
    );
    let text = env.seal(&dir, &["review"]);
    assert!(
        text.starts_with(&format!(
            "review {}..{} (HEAD against its merge base with origin/main)\n",
            &pushed[..12],
            &env.rev(&dir, "HEAD")[..12]
        )),
        "{text}"
    );
    // A revision alone is that commit against its parent; `A...B` is B
    // against the merge base.
    let (doc, _) = review_json(&env, &dir, &["HEAD~1"]);
    assert_eq!(
        categories(&doc),
        [("secrets/one.env".into(), "sealed".into())]
    );
    let (doc, _) = review_json(&env, &dir, &["HEAD...origin/main"]);
    assert_eq!(categories(&doc), []);
    assert_eq!(doc["range"]["base"], pushed);

    env.git(&dir, &["branch", "-q", "--unset-upstream"]);
    let (doc, _) = review_json(&env, &dir, &[]);
    assert_eq!(doc["range"]["how"], "parent");
    assert_eq!(doc["range"]["base"], env.rev(&dir, "HEAD~1"));
    assert_eq!(
        categories(&doc),
        [("secrets/two.env".into(), "sealed".into())]
    );

    // A root commit: against the empty tree.
    let root = env.path("root");
    env.git(
        env.tmp.path(),
        &["init", "-q", "-b", "main", root.to_str().unwrap()],
    );
    env.seal(&root, &["init", "secrets/**"]);
    commit_these(&env, &root, &[("secrets/first.env", "F=1\n")], "root");
    let (doc, _) = review_json(&env, &root, &[]);
    assert_eq!(doc["range"]["how"], "root");
    assert_eq!(doc["range"]["base"], Value::Null);
    assert_eq!(
        categories(&doc),
        [("secrets/first.env".into(), "sealed".into())]
    );
}

#[test]
fn works_from_a_subdirectory_with_names_that_are_not_utf8() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let dir = env.sealed_repo("r");
    for name in [&b"secrets/\xff.env"[..], b"secrets/\xfe/in-dir.env"] {
        let path = dir.join(OsStr::from_bytes(name));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"V=1\n").unwrap();
    }
    write_file(&dir, "secrets/sub/plain.env", b"P=1\n");
    env.git(&dir, &["add", "-A"]);
    env.git(&dir, &["commit", "-q", "-m", "odd bytes"]);
    let sub = dir.join("secrets/sub");
    let text = env.seal(&sub, &["review"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[1..4],
        [
            "sealed    secrets/sub/plain.env  +1 -0  to ".to_owned() + &env.kid(),
            "sealed    secrets/\\xfe/in-dir.env  +1 -0  to ".to_owned() + &env.kid(),
            "sealed    secrets/\\xff.env  +1 -0  to ".to_owned() + &env.kid(),
        ],
        "{text}"
    );
    let (doc, code) = review_json(&env, &sub, &["HEAD"]);
    assert_eq!(code, 0);
    assert_eq!(
        categories(&doc),
        [
            ("secrets/sub/plain.env".into(), "sealed".into()),
            ("secrets/\u{fffd}/in-dir.env".into(), "sealed".into()),
            ("secrets/\u{fffd}.env".into(), "sealed".into()),
        ]
    );
    // A rollback of a name that is not UTF-8 is found by its bytes.
    let name = OsStr::from_bytes(b"secrets/\xff.env");
    let first = env.rev(&dir, "HEAD");
    std::fs::write(dir.join(name), b"V=2\n").unwrap();
    env.git(&dir, &["commit", "-q", "-am", "v2"]);
    let ls = env
        .ok("git", &dir, &["ls-tree", "-z", &first, "secrets/"])
        .stdout;
    let id = ls
        .split(|b| *b == 0)
        .find(|e| e.ends_with(b"\tsecrets/\xff.env"))
        .map(|e| String::from_utf8_lossy(&e[12..52]).into_owned())
        .expect("the first blob");
    let mut info = b"100644 ".to_vec();
    info.extend_from_slice(id.as_bytes());
    info.extend_from_slice(b"\tsecrets/\xff.env\n");
    let out = env.run("git", &dir, &["update-index", "--index-info"], Some(&info));
    assert!(out.status.success(), "{}", stderr(&out));
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "back to v1"]);
    let text = env.seal(&sub, &["review"]);
    assert!(
        text.contains(&format!(
            "reverted  secrets/\\xff.env  +1 -1  same blob as in {}",
            &first[..12]
        )),
        "{text}"
    );
}

#[test]
fn a_rollback_is_found_past_thousands_of_commits() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let files = [("secrets/s.env", "S=1\n"), ("secrets/t.env", "T=1\n")];
    commit_these(&env, &dir, &files, "first");
    let first = env.rev(&dir, "HEAD");
    let old = env.rev(&dir, "HEAD:secrets/s.env");
    commit_these(&env, &dir, &[("secrets/s.env", "S=2\n")], "second");
    // Three thousand commits that touch other files, made at once.
    let mut stream = String::new();
    for i in 0..3000 {
        stream.push_str(&format!(
            "commit refs/heads/main\ncommitter A <a@example.test> {} +0000\ndata 1\nc\n{}M 100644 inline log/f{}.txt\ndata {}\n{i}\n\n",
            1_700_000_000 + i,
            if i == 0 { "from refs/heads/main^0\n" } else { "" },
            i % 50,
            i.to_string().len() + 1,
        ));
    }
    let out = env.run(
        "git",
        &dir,
        &["fast-import", "--quiet"],
        Some(stream.as_bytes()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    env.git(&dir, &["reset", "-q", "--hard", "main"]);
    // s.env back to its first envelope; t.env edited.
    let info = format!("100644,{old},secrets/s.env");
    env.git(&dir, &["update-index", "--cacheinfo", &info]);
    write_file(&dir, "secrets/t.env", b"T=2\n");
    env.git(&dir, &["add", "secrets/t.env"]);
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "roll back"]);
    let (doc, code) = review_json(&env, &dir, &[]);
    assert_eq!(code, 0);
    assert_eq!(
        categories(&doc),
        [
            ("secrets/s.env".into(), "reverted".into()),
            ("secrets/t.env".into(), "content".into())
        ]
    );
    assert_eq!(entry(&doc, "secrets/s.env")["reverted_to"], first);
}

#[test]
fn an_unseal_that_a_trusted_signer_approved_is_not_a_finding() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    // extra/x.txt sealed by an attribute, then the attribute and the
    // envelope dropped in one commit that skips the hooks.
    let attrs = std::fs::read_to_string(dir.join(".gitattributes")).unwrap();
    for (extra, text) in [(true, "sealed by attributes\n"), (false, "now public\n")] {
        let line = if extra { "extra/** filter=seal\n" } else { "" };
        std::fs::write(dir.join(".gitattributes"), format!("{line}{attrs}")).unwrap();
        write_file(&dir, "extra/x.txt", text.as_bytes());
        env.git(&dir, &["add", "-A"]);
        env.git(&dir, &["commit", "-q", "--no-verify", "-m", text]);
    }
    let sealed = env.git(&dir, &["cat-file", "-p", "HEAD~1:extra/x.txt"]);
    assert!(crate::harness::is_envelope(sealed.as_bytes()), "{sealed}");
    let (doc, code) = review_json(&env, &dir, &[]);
    assert_eq!(code, 1, "{doc:#}");
    assert_eq!(entry(&doc, "extra/x.txt")["category"], "unsealed");
    assert_eq!(entry(&doc, "extra/x.txt")["finding"], true);

    env.seal(&dir, &["audit", "approve", "unseal-path", "extra/x.txt"]);
    let (doc, code) = review_json(&env, &dir, &[]);
    assert_eq!(code, 0, "{doc:#}");
    let e = entry(&doc, "extra/x.txt");
    assert_eq!(e["category"], "unsealed");
    assert_eq!(e["finding"], false);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("trusted signer approved"),
        "{e}"
    );
}

#[test]
fn bad_ranges_are_usage_errors_that_name_the_range_and_the_fix() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    let out = env.fails("git-seal", &dir, &["review", "no-such-branch..HEAD"], 2);
    let err = stderr(&out);
    assert!(
        err.contains("\"no-such-branch..HEAD\" is not a revision range")
            && err.contains("`main..HEAD`"),
        "{err}"
    );
    let unrelated = env.path("other");
    env.git(env.tmp.path(), &["init", "-q", unrelated.to_str().unwrap()]);
    write_file(&unrelated, "x", b"x");
    env.git(&unrelated, &["add", "x"]);
    env.git(&unrelated, &["commit", "-q", "-m", "x"]);
    env.git(
        &dir,
        &["fetch", "-q", unrelated.to_str().unwrap(), "HEAD:other"],
    );
    let err = stderr(&env.fails("git-seal", &dir, &["review", "other...HEAD"], 2));
    assert!(
        err.contains("other...HEAD: the two sides have no commit in common"),
        "{err}"
    );
    let empty = env.path("empty");
    env.git(env.tmp.path(), &["init", "-q", empty.to_str().unwrap()]);
    let err = stderr(&env.fails("git-seal", &empty, &["review"], 2));
    assert!(err.contains("HEAD has no commit yet"), "{err}");
}

#[test]
fn a_sealed_file_that_became_a_link_is_one_unsealed_path() {
    let env = Env::new();
    let dir = env.sealed_repo("r");
    commit_these(&env, &dir, &[("secrets/db.env", "DB=1\n")], "db");
    env.git(&dir, &["rm", "-q", "--cached", "secrets/db.env"]);
    std::fs::remove_file(dir.join("secrets/db.env")).unwrap();
    std::os::unix::fs::symlink("../README", dir.join("secrets/db.env")).unwrap();
    env.git(&dir, &["add", "secrets/db.env"]);
    env.git(&dir, &["commit", "-q", "--no-verify", "-m", "a link"]);
    let (doc, code) = review_json(&env, &dir, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        categories(&doc),
        [("secrets/db.env".into(), "unsealed".into())]
    );
}
