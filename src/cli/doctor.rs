//! `git seal doctor`: what is misconfigured, and the command that fixes it.

use std::time::SystemTime;

use super::error::CommandResult;
use git_seal::audit;
use git_seal::audit::signer::SignerError;
use git_seal::drivers;
use git_seal::envelope;
use git_seal::hooks::{self, HookState};
use git_seal::keys::expiry;
use git_seal::keys::file::FileKeys;
use git_seal::policy::{self, SealAttributes};
use git_seal::repo::Repo;
use git_seal::workspace::{Workspace, WorkspaceError};

/// List what is misconfigured, with the command that fixes each.
///
/// Looks at: git-seal on PATH (Git runs it by name) and its version, filter
/// drivers missing or not required, hooks missing or not chained, key file permissions, locked files, disagreement between
/// `.seal/policy.json` and `.gitattributes`, and an audit chain that is
/// missing, not fetched, not verifying or not trusting your signer key;
/// a key lifecycle command (`rotate`, `recipients`, `kek remove`) that was
/// interrupted; and active KEKs due for rotation (`rotate_after_days` in the policy).
/// Exits 1 when anything is wrong; a KEK due within 30 days is a warning
/// that does not, one that is overdue is a problem.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Print JSON (schema `git-seal.doctor/v1`, docs/json.md): ok, and the
    /// problems and warnings, each with its fix.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run(args: Args) -> CommandResult<u8> {
    let repo = Repo::from_env()?;
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut warnings: Vec<(String, String)> = Vec::new();
    program_on_path(&mut problems, &mut warnings);
    let hooks::Each { dir, hooks } = hooks::states(&repo)?;
    for (name, state) in hooks {
        let problem = match state {
            HookState::Installed => continue,
            HookState::Missing => format!("the {name} hook is not installed in {}", dir.display()),
            HookState::Foreign => format!(
                "the {name} hook in {} is not git-seal's and does not run it (not chained)",
                dir.display()
            ),
            HookState::Outdated => format!("the {name} hook in {} is out of date", dir.display()),
        };
        problems.push((problem, "git seal hooks install".to_owned()));
    }
    if !repo.is_bare() {
        match Workspace::from_repo(repo) {
            Ok(project) => {
                if let Some(command) = git_seal::lifecycle::interrupted(&project.repo) {
                    problems.push((
                        format!("`{command}` was interrupted and is not finished"),
                        command,
                    ));
                }
                work_tree(&project, &mut problems)?;
                rotation(&project, &mut problems, &mut warnings);
            }
            Err(WorkspaceError::NotInitialized { .. }) => problems.push((
                "this repository is not set up for git-seal".to_owned(),
                "git seal init 'PATTERN'".to_owned(),
            )),
            Err(e) => problems.push((e.to_string(), "see the message".to_owned())),
        }
    }
    if args.json {
        let listed = |items: &[(String, String)]| -> Vec<serde_json::Value> {
            items
                .iter()
                .map(|(what, fix)| serde_json::json!({"what": what, "fix": fix}))
                .collect()
        };
        let doc = serde_json::json!({
            "schema": "git-seal.doctor/v1",
            "ok": problems.is_empty(),
            "problems": listed(&problems),
            "warnings": listed(&warnings),
        });
        outln!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(u8::from(!problems.is_empty()));
    }
    for (problem, fix) in &problems {
        outln!("{problem}; fix: `{fix}`");
    }
    for (warning, fix) in &warnings {
        outln!("warning: {warning}; fix: `{fix}`");
    }
    if problems.is_empty() {
        outln!("git-seal: doctor: nothing to fix");
        return Ok(0);
    }
    Ok(1)
}

/// Git runs `git-seal` by name (the filter, diff and merge drivers, the
/// hooks): it must be on PATH, and be this version.
fn program_on_path(problems: &mut Vec<(String, String)>, warnings: &mut Vec<(String, String)>) {
    let this = std::env::current_exe().ok();
    let here = this
        .as_deref()
        .and_then(|p| p.parent())
        .map(|d| d.display().to_string())
        .unwrap_or_else(|| "the directory git-seal is in".into());
    let Some(found) = super::report::git_seal_on_path() else {
        problems.push((
            "git-seal is not on PATH, so Git cannot run its filter, diff and merge drivers or hooks here (sealed files fail to add; checkouts stay sealed)".to_owned(),
            format!("export PATH=\"{here}:$PATH\""),
        ));
        return;
    };
    let same = this.as_deref().and_then(|t| t.canonicalize().ok()) == found.canonicalize().ok();
    if same {
        return;
    }
    let version = std::process::Command::new(&found)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let ours = format!("git-seal {}", env!("CARGO_PKG_VERSION"));
    if version.as_deref() != Some(ours.as_str()) {
        warnings.push((
            format!(
                "Git runs {} ({}), not this {ours}",
                found.display(),
                version.unwrap_or_else(|| "its version unknown".into())
            ),
            format!("export PATH=\"{here}:$PATH\""),
        ));
    }
}

/// Active KEKs due for rotation: overdue is a problem, due soon a warning.
fn rotation(
    project: &Workspace,
    problems: &mut Vec<(String, String)>,
    warnings: &mut Vec<(String, String)>,
) {
    let days = project.policy.rotate_after_days();
    for (kek, due) in expiry::needing_rotation(&project.keks, days, SystemTime::now()) {
        let to = match due.state {
            expiry::Due::Overdue { .. } => &mut *problems,
            _ => &mut *warnings,
        };
        to.push((due.describe(&kek.kid), expiry::rotate_fix(&kek.kid)));
    }
}

fn work_tree(project: &Workspace, problems: &mut Vec<(String, String)>) -> CommandResult {
    let missing = drivers::missing_drivers(&project.repo);
    if !missing.is_empty() {
        let required = missing.contains(&"filter.seal.required");
        problems.push((
            format!(
                "driver settings missing or wrong: {}{}",
                missing.join(", "),
                if required {
                    " (without filter.seal.required Git stores plaintext when the filter fails)"
                } else {
                    ""
                }
            ),
            "git seal init".to_owned(),
        ));
    }
    if project.provider.name() == "file" {
        let keys = FileKeys::open_default()?;
        for kek in &project.keks {
            if let Some(Err(e)) = keys.load(&kek.kid) {
                let fix = match &e {
                    git_seal::keys::KeyError::Permissions { path, .. } => {
                        format!("chmod 600 {}", path.display())
                    }
                    git_seal::keys::KeyError::DirPermissions { path, .. } => {
                        format!("chmod 700 {}", path.display())
                    }
                    _ => "see the message".to_owned(),
                };
                problems.push((e.to_string(), fix));
            }
        }
    }
    // A provider that can say why it serves no key here (a token that
    // cannot be reached or logged in to) says so before any file is added.
    if let Some(problem) = project.keys().problem() {
        if !project.actives().any(|k| project.keys().has(&k.kid)) {
            problems.push((
                format!(
                    "no active KEK can seal here ({} provider): {problem}",
                    project.provider.name()
                ),
                format!(
                    "fix what the message names (docs/key-lifecycle.md lists the {} provider's settings)",
                    project.provider.name()
                ),
            ));
        }
    }
    let locked = git_seal::lock::locked_paths(project)?;
    if !locked.is_empty() && !git_seal::filter::lock_marker(&project.repo).exists() {
        let usable = project.keys().has(&project.active()?.kid);
        problems.push((
            format!(
                "{} sealed file(s) are locked (envelopes in the work tree): {}",
                locked.len(),
                locked.join(", ")
            ),
            if usable {
                "git seal unlock".to_owned()
            } else {
                format!(
                    "install the private key of {} ({} provider), then git seal unlock",
                    project.active()?.kid,
                    project.provider.name()
                )
            },
        ));
    }
    let text = std::fs::read_to_string(project.root.join(".gitattributes")).unwrap_or_default();
    let attributes = SealAttributes::parse(&text);
    for glob in &project.policy.file.sealed {
        if !attributes.patterns.contains(glob) {
            problems.push((
                format!("{} requires {glob:?} sealed but .gitattributes has no `{glob} filter=seal` line", policy::PATH),
                "git seal init".to_owned(),
            ));
        }
    }
    for pattern in &attributes.patterns {
        if !project.policy.file.sealed.contains(pattern) {
            problems.push((
                format!(".gitattributes seals {pattern:?} but {} does not require it, so `git seal check` would not catch it stored as plaintext", policy::PATH),
                format!("git seal init '{pattern}'"),
            ));
        }
    }
    audit_chain(&project.repo, problems)?;
    if let Some(tip) = audit::chain::tip(&project.repo) {
        let missing = audit::coverage::local_unrecorded(project, tip)?;
        if let Some(first) = missing.first() {
            problems.push((
                format!(
                    "{} commit(s) of this clone changed sealed paths and have no audit entry, the first {}; your next commit records them once the problems above are fixed, or record them now",
                    missing.len(),
                    first.commit
                ),
                format!(
                    "git seal audit record {}",
                    missing
                        .iter()
                        .map(|m| m.commit.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            ));
        }
    }
    let mut plaintext = Vec::new();
    for (path, id) in project.sealed_index_paths()? {
        if !project.repo.with_blob(id, envelope::is_envelope)? {
            plaintext.push(path);
        }
    }
    if !plaintext.is_empty() {
        problems.push((
            format!(
                "{} file(s) that must be sealed are plaintext in the index: {}",
                plaintext.len(),
                plaintext.join(", ")
            ),
            "git seal migrate".to_owned(),
        ));
    }
    Ok(())
}

/// The audit chain: present, fetched from every remote, verifying, and
/// willing to take this user's entries.
fn audit_chain(repo: &Repo, problems: &mut Vec<(String, String)>) -> CommandResult {
    for remote in repo.remotes()? {
        let key = format!("remote.{remote}.fetch");
        let refspec = audit::fetch_refspec(&remote);
        if !repo.config_get_all(&key).contains(&refspec) {
            problems.push((
                format!("{remote} does not fetch the audit chain ({key} lacks {refspec})"),
                "git seal init".to_owned(),
            ));
        }
    }
    let Some(tip) = audit::chain::tip(repo) else {
        problems.push((
            format!("there is no audit chain ({})", audit::REF),
            "git seal init".to_owned(),
        ));
        return Ok(());
    };
    let report = audit::verify::verify(repo, tip, &Default::default())?;
    if !report.ok() {
        problems.push((
            format!(
                "the audit chain does not verify ({} finding(s); the first: {})",
                report.findings.len(),
                report.findings[0].reason
            ),
            "git seal audit verify".to_owned(),
        ));
    }
    let me = match audit::Signer::load() {
        Ok(me) => me,
        Err(audit::AuditError::Signer(e)) => {
            let fix = match &e {
                SignerError::Permissions { path, .. } => format!("chmod 600 {}", path.display()),
                SignerError::DirPermissions { path, .. } => format!("chmod 700 {}", path.display()),
                _ => "see the message".to_owned(),
            };
            problems.push((e.to_string(), fix));
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    match me {
        None => problems.push((
            "you have no audit signer key yet, so your sealing events are not recorded".to_owned(),
            "git seal audit signer show (makes one), then a trusted signer runs the `git seal audit signer add` it prints".to_owned(),
        )),
        Some(me) if !report.signers.iter().any(|s| s.fingerprint == me.fingerprint()) => {
            problems.push((
                format!(
                    "your signer {} is not trusted by the audit chain, so your sealing events are not recorded",
                    me.fingerprint()
                ),
                format!(
                    "a trusted signer runs: git seal audit signer add '{}' --email YOU",
                    me.public_openssh()
                ),
            ));
        }
        Some(_) => {}
    }
    Ok(())
}
