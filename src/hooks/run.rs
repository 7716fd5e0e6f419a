//! What each hook does when Git runs it (`git seal hook NAME`).
//!
//! pre-commit and pre-receive refuse with one line per finding; the post-*
//! hooks never change Git's outcome: they report what arrived, unlock what
//! a key now opens, and append audit entries, warning on failure. Every
//! hook returns its lines for the caller to print on stderr.

use crate::audit::{self, AuditError};
use crate::check::{self, Finding};
use crate::filter::lock_marker;
use crate::lock;
use crate::repo::{ObjectKind, Oid, Repo, RepoError};
use crate::workspace::{Workspace, WorkspaceError};

#[derive(Debug, thiserror::Error)]
pub enum HookRunError {
    #[error("unknown hook {0:?} (known: pre-commit, pre-merge-commit, post-commit, post-merge, post-checkout, post-rewrite, pre-push, reference-transaction, pre-receive)")]
    Unknown(String),
    #[error("pre-receive: bad input line {line:?}")]
    BadInput { line: String },
    #[error(transparent)]
    Repo(#[from] RepoError),
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// What a hook has to say, and whether Git must stop.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Lines for stderr, each without the `git-seal: ` prefix.
    pub lines: Vec<String>,
    /// Refuse the commit or push (exit 1).
    pub refuse: bool,
}

impl Outcome {
    fn say(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }

    fn warn(&mut self, line: impl std::fmt::Display) {
        self.lines.push(format!("warning: {line}"));
    }
}

/// Run hook `name` with the arguments and standard input Git gave it.
pub fn run(name: &str, args: &[String], stdin: &str) -> Result<Outcome, HookRunError> {
    match name {
        // Git gives pre-commit no arguments; the pre-commit framework
        // gives it the files it runs on, each judged as staged even where
        // unchanged since HEAD.
        "pre-commit" => pre_commit(&Repo::from_env()?, "commit", args),
        // A merge that creates a commit runs this instead of pre-commit:
        // the same rules, on the index the merge prepared.
        "pre-merge-commit" => pre_commit(&Repo::from_env()?, "merge", &[]),
        "pre-receive" => pre_receive(&Repo::from_env()?, stdin),
        "post-commit" => Ok(with_workspace(|ws, out| {
            warn_audit(out, "post-commit", audit::on_commit(ws))
        })),
        "post-merge" => Ok(with_workspace(post_merge)),
        "post-checkout" => Ok(with_workspace(|ws, out| post_checkout(ws, args, out))),
        "post-rewrite" => Ok(with_workspace(|ws, out| {
            post_rewrite(
                ws,
                args.first().map_or("rewrite", String::as_str),
                stdin,
                out,
            )
        })),
        "pre-push" => Ok(pre_push(args, stdin)),
        "reference-transaction" if std::env::var_os(audit::TAKING_CHAIN).is_some() => {
            Ok(Outcome::default())
        }
        "reference-transaction" => Ok(with_workspace(|ws, out| {
            match audit::on_fetch(ws) {
                Ok(notes) => out.lines.extend(notes.into_iter().map(|n| format!("audit: {n}"))),
                Err(e) => out.say(format!(
                    "error: audit: the fetched chain was not taken in: {e}; it is taken at your next commit, or run `git seal audit sync`"
                )),
            }
        })),
        other => Err(HookRunError::Unknown(other.to_owned())),
    }
}

/// Threads for reading blobs: the machine's cores.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn pre_commit(repo: &Repo, what: &str, files: &[String]) -> Result<Outcome, HookRunError> {
    // The framework runs hooks from the top of the work tree, with paths
    // relative to it, as the index has them.
    let also = files.iter().map(String::as_str).collect();
    let findings = check::check_index(repo, &also)?;
    let mut out = Outcome::default();
    if findings.is_empty() {
        return Ok(out);
    }
    out.lines.extend(listed(&findings));
    out.say(format!("{what} refused ({} finding(s))", findings.len()));
    out.refuse = true;
    Ok(out)
}

fn pre_receive(repo: &Repo, input: &str) -> Result<Outcome, HookRunError> {
    let mut include = Vec::new();
    let mut chain_problems = Vec::new();
    let mut object_findings = Vec::new();
    // Approvals come from the chain as this push leaves it.
    let mut pushed_chain = None;
    for line in input.lines() {
        // "<old> <new> <ref>"; a zero <new> deletes the ref.
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [old, new, name] = fields[..] else {
            continue;
        };
        let parse = |hex: &str| {
            Oid::from_str(hex).map_err(|_| HookRunError::BadInput {
                line: line.to_owned(),
            })
        };
        let (old, new) = (parse(old)?, parse(new)?);
        if name == audit::REF {
            chain_problems.extend(pushed_chain_problems(repo, old, new)?);
            pushed_chain = (!new.is_zero()).then_some(new);
            continue;
        }
        if new.is_zero() {
            continue;
        }
        // Every object a pushed ref can reach: a ref (or a tag) may name a
        // tree or a blob as well as a commit.
        match repo.peel(new)? {
            Some((ObjectKind::Commit, commit)) => include.push(commit),
            Some((ObjectKind::Tree, tree)) => {
                let base = server_rules(repo)?;
                let label = format!("{name} (tree {tree})");
                object_findings.extend(check::check_tree(repo, &label, tree, base.as_ref())?);
            }
            Some((ObjectKind::Blob, blob)) => {
                let base = server_rules(repo)?;
                object_findings.extend(check::check_blob(repo, name, blob, base.as_ref())?);
            }
            None => {}
        }
    }
    let mut out = Outcome::default();
    if !chain_problems.is_empty() {
        for problem in &chain_problems {
            out.say(format!("{}: {problem}", audit::REF));
        }
        out.say("push refused: the audit chain would not verify; fix it (see `git seal audit verify`) and push again");
        out.refuse = true;
        return Ok(out);
    }
    // Only what the push adds: commits no reference reaches yet.
    let report = if include.is_empty() {
        None
    } else {
        let exclude = repo.ref_commits()?;
        let base = server_rules(repo)?;
        let context = check::Context {
            base: base.as_ref(),
            chain: pushed_chain.or_else(|| audit::chain::tip(repo)),
        };
        Some(check::check_commits(
            repo,
            "push",
            &include,
            &exclude,
            threads(),
            &context,
        )?)
    };
    for accepted in report.iter().flat_map(|r| &r.accepted) {
        out.say(format!("accepted: {accepted}"));
    }
    let commit_findings = report.as_ref().map_or(&[][..], |r| &r.findings[..]);
    if commit_findings.is_empty() && object_findings.is_empty() {
        return Ok(out);
    }
    out.lines
        .extend(listed(commit_findings.iter().chain(&object_findings)));
    out.say(format!(
        "push refused ({} finding(s) in {} new commit(s){}); fix them and push again",
        commit_findings.len() + object_findings.len(),
        report.as_ref().map_or(0, |r| r.commits),
        if object_findings.is_empty() {
            ""
        } else {
            " and in refs that name a tree or blob"
        },
    ));
    out.refuse = true;
    Ok(out)
}

/// The rules of the server's current default branch (HEAD), if it has one.
fn server_rules(repo: &Repo) -> Result<Option<check::Rules>, HookRunError> {
    Ok(match repo.head_tree_id()? {
        Some(tree) => Some(check::tree_rules(repo, tree, &crate::keys::kids_here())?),
        None => None,
    })
}

/// What is wrong with a push to the audit chain: it may only grow (the old
/// tip stays an ancestor; never deleted) and must verify.
fn pushed_chain_problems(repo: &Repo, old: Oid, new: Oid) -> Result<Vec<String>, HookRunError> {
    if new.is_zero() {
        return Ok(vec!["deleting the audit chain is not allowed".into()]);
    }
    let options = audit::verify::Options {
        since: (!old.is_zero()).then(|| old.to_string()),
        trust: None,
    };
    let report = audit::verify::verify(repo, new, &options)?;
    Ok(report
        .findings
        .iter()
        .map(|f| match f.commit {
            Some(commit) => format!("entry {commit}: {}", f.reason),
            None => f.reason.clone(),
        })
        .collect())
}

/// Run `hook` in the workspace, or do nothing where git-seal is not set up
/// (so that installing hooks early is harmless). A post-* hook never fails:
/// its problems become warnings.
fn with_workspace(hook: impl FnOnce(&Workspace, &mut Outcome)) -> Outcome {
    let mut out = Outcome::default();
    match Repo::from_env()
        .map_err(WorkspaceError::from)
        .and_then(Workspace::from_repo)
    {
        Ok(ws) => hook(&ws, &mut out),
        Err(WorkspaceError::NotInitialized { .. }) => {}
        Err(e) => out.warn(format_args!("hook skipped: {e}")),
    }
    out
}

fn post_merge(ws: &Workspace, out: &mut Outcome) {
    let (head, parents) = match ws.repo.head_commit() {
        Ok(Some(head)) => head,
        Ok(None) => return,
        Err(e) => return out.warn(format_args!("post-merge: {e}")),
    };
    let old = ws
        .repo
        .resolve_commit("ORIG_HEAD")
        .or(parents.first().copied());
    let verified = arrivals(ws, "post-merge", old, head, out);
    warn_audit(out, "post-merge", audit::on_merge(ws, verified));
}

fn post_checkout(ws: &Workspace, args: &[String], out: &mut Outcome) {
    let commit = |at: usize| {
        args.get(at)
            .and_then(|s| Oid::from_str(s).ok())
            .filter(|id| !id.is_zero())
    };
    if let (Some(new), old) = (commit(1), commit(0)) {
        arrivals(ws, "post-checkout", old, new, out);
    }
}

fn post_rewrite(ws: &Workspace, kind: &str, input: &str, out: &mut Outcome) {
    let mut findings = Vec::new();
    let mut sealed = 0;
    let mut rewritten = Vec::new();
    for line in input.lines() {
        // "<old> <new> [<extra>]"
        let mut ids = line
            .split_whitespace()
            .take(2)
            .map(|s| Oid::from_str(s).ok());
        let (Some(Some(old)), Some(Some(new))) = (ids.next(), ids.next()) else {
            continue;
        };
        rewritten.push((old, new));
        let parent = ws.repo.peel_commit(&format!("{new}^")).ok();
        match check::check_arrivals(&ws.repo, parent, new) {
            Ok(a) => {
                sealed += a.sealed;
                findings.extend(a.findings);
            }
            Err(e) => out.warn(format_args!("post-rewrite: cannot check {new}: {e}")),
        }
    }
    summarize(out, "post-rewrite", sealed, &findings, 0);
    warn_audit(out, "post-rewrite", audit::on_rewrite(ws, kind, &rewritten));
}

/// Check what arrived between `old` and `new`, unlock files a key now
/// opens, and summarise; return whether the arrived envelopes verified.
fn arrivals(ws: &Workspace, hook: &str, old: Option<Oid>, new: Oid, out: &mut Outcome) -> bool {
    let arrived = match check::check_arrivals(&ws.repo, old, new) {
        Ok(arrived) => arrived,
        Err(e) => {
            out.warn(format_args!("{hook}: cannot check what arrived: {e}"));
            return false;
        }
    };
    let unlocked = if lock_marker(&ws.repo).exists() {
        0 // locked on purpose by `git seal lock`: stay locked
    } else {
        match lock::unlock_if_left_sealed(ws) {
            Ok(n) => n,
            Err(e) => {
                out.warn(format_args!("{hook}: files stay locked: {e}"));
                0
            }
        }
    };
    summarize(out, hook, arrived.sealed, &arrived.findings, unlocked);
    arrived.findings.is_empty()
}

/// Findings as a hook prints them: a few of each kind, unless
/// GIT_SEAL_VERBOSE is set.
fn listed<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Vec<String> {
    let all = std::env::var_os("GIT_SEAL_VERBOSE").is_some_and(|v| !v.is_empty() && v != "0");
    check::finding::summary_lines(findings, all, "set GIT_SEAL_VERBOSE=1 to list all")
}

fn summarize(out: &mut Outcome, hook: &str, sealed: usize, findings: &[Finding], unlocked: usize) {
    out.lines.extend(listed(findings));
    if sealed == 0 && findings.is_empty() && unlocked == 0 {
        return;
    }
    let mut line = format!("{hook}: {sealed} sealed file(s) arrived");
    line.push_str(&match findings.len() {
        0 => ", all envelopes valid".to_owned(),
        n => format!(", {n} finding(s) (run `git seal check` in CI to refuse them)"),
    });
    if unlocked > 0 {
        line.push_str(&format!("; unlocked {unlocked} file(s)"));
    }
    out.say(line);
}

/// An entry that could not be written is an error the user sees (never
/// a quiet warning), and it is not lost: the next commit's hook records
/// what is missing ([`audit::coverage::unrecorded_before`]).
fn warn_audit(out: &mut Outcome, hook: &str, result: Result<(), AuditError>) {
    if let Err(e) = result {
        out.say(format!(
            "error: {hook}: the audit entry was not written: {e}. Fix that; your next commit records what is missing (`git seal audit verify --coverage` lists it)"
        ));
    }
}

/// Is the `git push` that runs this hook a `--dry-run` (`-n`)? Git runs
/// pre-push then too but tells it nothing, so the push's own command line
/// is read (Linux `/proc`; elsewhere it counts as a real push).
fn push_is_dry_run() -> bool {
    let mut pid = std::os::unix::process::parent_id();
    // The hook script's parent is `git push` (through at most a shell or two).
    for _ in 0..4 {
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            return false;
        };
        let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
        if let Some(at) = args.iter().position(|a| *a == b"push") {
            return args[at + 1..].iter().any(|a| {
                *a == b"--dry-run"
                    || (a.len() > 1
                        && a[0] == b'-'
                        && a[1] != b'-'
                        && a[1..].iter().all(|c| b"vqfnud46".contains(c))
                        && a.contains(&b'n'))
            });
        }
        let Some(parent) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                // "pid (comm) state ppid …": comm may hold spaces.
                let after = &stat[stat.rfind(')')? + 1..];
                after.split_whitespace().nth(1)?.parse().ok()
            })
        else {
            return false;
        };
        pid = parent;
    }
    false
}

/// pre-push: publish the audit chain with the branch, as `git seal audit
/// sync` does (fetch, merge, push), when the push sends anything but the
/// chain itself. Never refuses the push: a chain that cannot be published
/// is reported with the fix.
fn pre_push(args: &[String], input: &str) -> Outcome {
    let mut out = Outcome::default();
    let sends_more = input.lines().any(|line| {
        // "<local ref> <local oid> <remote ref> <remote oid>"
        let fields: Vec<&str> = line.split_whitespace().collect();
        matches!(fields[..], [_, local, remote_ref, _]
            if !remote_ref.starts_with("refs/seal/")
                && Oid::from_str(local).is_ok_and(|id| !id.is_zero()))
    });
    let Some(remote) = args.first().filter(|_| sends_more && !push_is_dry_run()) else {
        return out;
    };
    let repo = match Repo::from_env() {
        Ok(repo) => repo,
        Err(e) => {
            out.warn(format_args!("pre-push: {e}"));
            return out;
        }
    };
    if audit::chain::tip(&repo).is_none() {
        return out;
    }
    let published = if repo.has_remote(remote) {
        audit::sync::sync(&repo, remote).map(|synced| match synced {
            audit::sync::Synced::Pushed(tip) => Some(tip),
            audit::sync::Synced::InSync(_) => None,
        })
    } else {
        // A URL: no tracking ref to merge through; push what is here.
        audit::sync::push_to(&repo, remote).map(Some)
    };
    match published {
        Ok(Some(tip)) => out.say(format!("pre-push: published {} ({tip}) to {remote}", audit::REF)),
        Ok(None) => {}
        Err(e) => out.say(format!(
            "error: pre-push: the audit chain was not published to {remote}: {e}. The push goes on; run `git seal audit sync {remote}` once that is fixed"
        )),
    }
    out
}
