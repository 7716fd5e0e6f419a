//! The CI templates' own commands (templates/github, templates/gitlab),
//! taken from the files as shipped and run in a CI-like checkout: a
//! repository with an accepted historic finding passes on a new branch and
//! on its default branch, and fails on a new leak.

use std::path::Path;

use crate::harness::{stderr, stdout, Env};

/// The block under `marker`'s `run: |` / `- |` line, dedented: the script
/// the CI service runs.
fn script_after(template: &str, marker: &str, block: &str) -> String {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(template))
        .unwrap_or_else(|e| panic!("{template}: {e}"));
    let mut lines = text.lines().skip_while(|l| !l.starts_with(marker));
    assert!(lines.next().is_some(), "{template}: no {marker:?}");
    let start = lines
        .find(|l| l.trim() == block)
        .unwrap_or_else(|| panic!("{template}: no {block:?} after {marker:?}"));
    let indent = start.len() - start.trim_start().len() + 2;
    let body: Vec<&str> = lines
        .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() >= indent)
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect();
    assert!(!body.is_empty(), "{template}: empty script");
    body.join("\n") + "\n"
}

fn github_script() -> String {
    script_after(
        "templates/github/git-seal.yml",
        "      - name: git seal check, audit verify --coverage, review",
        "run: |",
    )
}

fn gitlab_script() -> String {
    script_after(
        "templates/gitlab/git-seal.gitlab-ci.yml",
        "  script:",
        "- |",
    )
}

/// A fresh CI checkout of `server` at `rev`, with the chain fetched as the
/// templates fetch it.
fn ci_checkout(env: &Env, server: &Path, name: &str, rev: &str) -> std::path::PathBuf {
    let ci = env.clone_repo(server, name);
    env.git(&ci, &["checkout", "-q", "--detach", rev]);
    env.git(
        &ci,
        &["fetch", "-q", "origin", "+refs/seal/audit:refs/seal/audit"],
    );
    ci
}

/// Run `script` in `dir` with `vars`; (success, everything it printed).
fn run_script(env: &Env, dir: &Path, script: &str, vars: &[(&str, &str)]) -> (bool, String) {
    let mut command = env.command("sh", dir);
    command.arg("-c").arg(script);
    for (name, value) in vars {
        command.env(name, value);
    }
    let out = command.output().unwrap();
    let said = format!("{}{}", stdout(&out), stderr(&out));
    (out.status.success(), said)
}

const ZERO: &str = "0000000000000000000000000000000000000000";

struct Project {
    env: Env,
    dev: std::path::PathBuf,
    server: std::path::PathBuf,
}

/// A repository whose main branch once committed `secrets/old.env` as
/// plaintext (hooks bypassed), sealed it in the next commit, and whose
/// team accepted that historic finding; main and its chain pushed to a
/// server with no hooks of its own.
fn project_with_an_accepted_finding() -> Project {
    let env = Env::new();
    let server = env.bare("server.git");
    let dev = env.sealed_repo("dev");
    env.git(&dev, &["remote", "add", "origin", server.to_str().unwrap()]);
    env.stage_raw(&dev, "secrets/old.env", b"PASSWORD=old\n");
    env.git(&dev, &["commit", "-q", "--no-verify", "-m", "leak"]);
    let leak = env.rev(&dev, "HEAD");
    env.git(&dev, &["rm", "-q", "--cached", "secrets/old.env"]);
    env.git(&dev, &["add", "secrets/old.env"]);
    env.git(&dev, &["commit", "-q", "-m", "seal it"]);
    let finding = format!("{leak}:secrets/old.env");
    env.fails("git-seal", &dev, &["check"], 1);
    env.seal(
        &dev,
        &[
            "check",
            "--accept",
            &finding,
            "--reason",
            "password rotated",
        ],
    );
    env.seal(&dev, &["check"]);
    env.git(&dev, &["push", "-q", "origin", "main"]);
    Project { env, dev, server }
}

#[test]
fn the_github_template_passes_an_accepted_finding_and_fails_a_new_leak() {
    let Project { env, dev, server } = project_with_an_accepted_finding();
    let script = github_script();
    let summary = env.path("summary.md");
    let github = |ci: &Path, branch: &str, before: &str| {
        let _ = std::fs::remove_file(&summary);
        run_script(
            &env,
            ci,
            &script,
            &[
                ("EVENT", "push"),
                ("BEFORE", before),
                ("BRANCH", branch),
                ("DEFAULT_BRANCH", "main"),
                ("RUNNER_TEMP", env.tmp.path().to_str().unwrap()),
                ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
            ],
        )
    };

    // The first push of main: all of history, the accepted finding too.
    let ci = ci_checkout(&env, &server, "ci-main", "origin/main");
    let (ok, said) = github(&ci, "main", ZERO);
    assert!(ok, "{said}");
    assert!(said.contains("accepted"), "{said}");

    // A new branch with a sealed file: checked against main's merge base.
    env.git(&dev, &["checkout", "-q", "-b", "feature"]);
    crate::audit::write(&dev, "secrets/new.env", "NEW=1\n");
    env.git(&dev, &["add", "secrets"]);
    env.git(&dev, &["commit", "-q", "-m", "new secret"]);
    env.git(&dev, &["push", "-q", "origin", "feature"]);
    let ci = ci_checkout(&env, &server, "ci-feature", "origin/feature");
    let (ok, said) = github(&ci, "feature", ZERO);
    assert!(ok, "{said}");
    let review = std::fs::read_to_string(&summary).unwrap();
    assert!(review.contains("secrets/new.env"), "{review}");

    // A new leak on the branch fails, naming it.
    let before = env.rev(&dev, "HEAD");
    env.stage_raw(&dev, "secrets/leak.env", b"TOKEN=new\n");
    env.git(&dev, &["commit", "-q", "--no-verify", "-m", "oops"]);
    env.git(&dev, &["push", "-q", "origin", "feature"]);
    let ci = ci_checkout(&env, &server, "ci-leak", "origin/feature");
    let (ok, said) = github(&ci, "feature", &before);
    assert!(!ok, "a new leak passed: {said}");
    assert!(said.contains("secrets/leak.env"), "{said}");
    // And as a new branch (no `before`): the same.
    let (ok, said) = github(&ci, "feature", ZERO);
    assert!(!ok, "a new leak passed: {said}");
}

#[test]
fn the_gitlab_template_passes_an_accepted_finding_and_fails_a_new_leak() {
    let Project { env, dev, server } = project_with_an_accepted_finding();
    let script = gitlab_script();
    let gitlab = |ci: &Path, branch: &str, before: &str| {
        run_script(
            &env,
            ci,
            &script,
            &[
                ("CI_COMMIT_BEFORE_SHA", before),
                ("CI_COMMIT_REF_NAME", branch),
                ("CI_DEFAULT_BRANCH", "main"),
            ],
        )
    };
    let ci = ci_checkout(&env, &server, "ci-main", "origin/main");
    let (ok, said) = gitlab(&ci, "main", ZERO);
    assert!(ok, "{said}");
    assert!(ci.join("git-seal-review.md").exists());

    env.git(&dev, &["checkout", "-q", "-b", "feature"]);
    env.stage_raw(&dev, "secrets/leak.env", b"TOKEN=new\n");
    env.git(&dev, &["commit", "-q", "--no-verify", "-m", "oops"]);
    env.git(&dev, &["push", "-q", "origin", "feature"]);
    let ci = ci_checkout(&env, &server, "ci-leak", "origin/feature");
    let (ok, said) = gitlab(&ci, "feature", ZERO);
    assert!(!ok, "a new leak passed: {said}");
    assert!(said.contains("secrets/leak.env"), "{said}");
}

/// `check` in a shallow clone says history is cut off, and fails under the
/// templates' --require-full-history.
#[test]
fn a_shallow_ci_checkout_is_reported() {
    let Project { env, server, .. } = project_with_an_accepted_finding();
    let url = format!("file://{}", server.display());
    let shallow = env.path("shallow");
    env.git(
        env.tmp.path(),
        &[
            "clone",
            "-q",
            "--depth",
            "1",
            &url,
            shallow.to_str().unwrap(),
        ],
    );
    let out = env.run("git-seal", &shallow, &["check"], None);
    assert!(stderr(&out).contains("shallow"), "{}", stderr(&out));
    env.fails(
        "git-seal",
        &shallow,
        &["check", "--require-full-history"],
        1,
    );
}
