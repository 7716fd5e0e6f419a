//! `git seal status`: what this clone has and whether it is healthy.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;

use super::error::CommandResult;
use git_seal::audit;
use git_seal::drivers;
use git_seal::envelope;
use git_seal::hooks::{self, HookState};
use git_seal::keys::expiry;
use git_seal::workspace::Workspace;

/// Show KEKs, sealed files, lock state, drivers, hooks and the audit chain.
///
/// Each active KEK shows when it is due for rotation (`rotate_after_days`
/// after its creation, in `.seal/policy.json`; default 730), with a
/// `rotation:` line when that is within 30 days or past.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Print machine-readable JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
pub(crate) struct Status {
    /// `git-seal.status/v1` (docs/json.md).
    pub schema: &'static str,
    pub root: String,
    pub provider: String,
    pub keks: Vec<KekStatus>,
    pub active_kid: String,
    /// The policy's rotation cadence for active KEKs, in days.
    pub rotate_after_days: u32,
    /// Sealed paths in HEAD, counted per recipient kid.
    pub sealed_in_head: BTreeMap<String, usize>,
    pub sealed_files: usize,
    /// Paths the policy or `.gitattributes` seals that HEAD stores in plaintext.
    pub plaintext_in_head: Vec<String>,
    /// Sealed paths whose work-tree file is still an envelope.
    pub locked: Vec<String>,
    pub drivers_missing: Vec<String>,
    pub hooks_installed: Vec<String>,
    pub audit: AuditStatus,
}

#[derive(Serialize)]
pub(crate) struct KekStatus {
    pub kid: String,
    pub version: u32,
    pub status: String,
    pub custody: String,
    pub algorithm: String,
    pub created_at: String,
    pub usable_here: bool,
    /// When an active KEK is due for rotation (RFC 3339; `None` for a KEK
    /// that is not active).
    pub due: Option<String>,
    /// `ok`, `due-soon` (within 30 days) or `overdue`; `None` when not active.
    pub due_state: Option<&'static str>,
    /// Days until due, negative once overdue; `None` when not active.
    pub due_in_days: Option<i64>,
    /// The same, for text output.
    #[serde(skip)]
    pub expiry: Option<expiry::Expiry>,
    /// What to say when it is due soon or overdue, with the fix.
    #[serde(skip)]
    pub rotation: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct AuditStatus {
    pub tip: Option<String>,
    /// Whether `git seal audit verify` would pass (`None`: no chain).
    pub verified: Option<bool>,
    pub entries: usize,
    pub findings: usize,
}

pub(crate) fn run(args: Args) -> CommandResult<u8> {
    let project = Workspace::here()?;
    let status = collect(&project)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print_text(&status)?;
    }
    Ok(0)
}

pub(crate) fn collect(project: &Workspace) -> CommandResult<Status> {
    let rotate_after_days = project.policy.rotate_after_days();
    let now = SystemTime::now();
    let keks = project
        .keks
        .iter()
        .map(|k| {
            let due = expiry::expiry(k, rotate_after_days, now);
            KekStatus {
                kid: k.kid.to_string(),
                version: k.version,
                status: format!("{:?}", k.status).to_lowercase(),
                custody: k.custody.clone(),
                algorithm: k.wrap.clone(),
                created_at: k.created_at.clone(),
                usable_here: project.keys().has(&k.kid),
                due: due.map(|d| d.due_rfc3339()),
                due_state: due.map(|d| d.state.as_str()),
                due_in_days: due.map(|d| d.due_in_days()),
                expiry: due,
                rotation: due
                    .filter(expiry::Expiry::needs_rotation)
                    .map(|due| due.advice(&k.kid)),
            }
        })
        .collect();
    let mut sealed_in_head = BTreeMap::new();
    let mut sealed_files = 0;
    let mut plaintext_in_head = Vec::new();
    let mut locked = Vec::new();
    for (path, id) in project.repo.head_files()? {
        if !project.must_seal(&path)? {
            continue;
        }
        match envelope::parse(&project.repo.blob(id)?) {
            Ok(env) => {
                sealed_files += 1;
                for r in &env.recipients {
                    *sealed_in_head.entry(r.kid.to_string()).or_insert(0) += 1;
                }
                if git_seal::lock::file_is_envelope(&project.root.join(&path)) {
                    locked.push(path);
                }
            }
            Err(_) => plaintext_in_head.push(path),
        }
    }
    let hooks_installed = hooks::states(&project.repo)?
        .hooks
        .into_iter()
        .filter(|(_, state)| *state == HookState::Installed)
        .map(|(name, _)| name.to_owned())
        .collect();
    Ok(Status {
        schema: "git-seal.status/v1",
        root: project.root.display().to_string(),
        provider: project.provider.name().to_owned(),
        keks,
        active_kid: project.active()?.kid.to_string(),
        rotate_after_days,
        sealed_in_head,
        sealed_files,
        plaintext_in_head,
        locked,
        drivers_missing: drivers::missing_drivers(&project.repo)
            .iter()
            .map(|s| s.to_string())
            .collect(),
        hooks_installed,
        audit: audit_status(&project.repo)?,
    })
}

fn audit_status(repo: &git_seal::repo::Repo) -> CommandResult<AuditStatus> {
    let Some(tip) = audit::chain::tip(repo) else {
        return Ok(AuditStatus {
            tip: None,
            verified: None,
            entries: 0,
            findings: 0,
        });
    };
    let report = audit::verify::verify(repo, tip, &Default::default())?;
    Ok(AuditStatus {
        tip: Some(tip.to_string()),
        verified: Some(report.ok()),
        entries: report.entries,
        findings: report.findings.len(),
    })
}

fn print_text(s: &Status) -> CommandResult {
    outln!("repository: {}", s.root);
    outln!("provider:   {}", s.provider);
    outln!("KEKs:");
    for k in &s.keks {
        let active = if k.kid == s.active_kid {
            " (active)"
        } else {
            ""
        };
        let due = match &k.expiry {
            Some(due) => format!(" due={}", due.due_date()),
            None => String::new(),
        };
        outln!(
            "  {} v{} {}{} custody={} alg={} created={}{due} usable here: {}",
            k.kid,
            k.version,
            k.status,
            active,
            k.custody,
            k.algorithm,
            k.created_at,
            if k.usable_here { "yes" } else { "no" }
        );
    }
    for rotation in s.keks.iter().filter_map(|k| k.rotation.as_ref()) {
        outln!("  rotation: {rotation}");
    }
    outln!("sealed files in HEAD: {}", s.sealed_files);
    for (kid, n) in &s.sealed_in_head {
        outln!("  {kid}: {n}");
    }
    for path in &s.plaintext_in_head {
        outln!("  PLAINTEXT in HEAD (must be sealed): {path}");
    }
    if s.locked.is_empty() {
        outln!("work tree: unlocked");
    } else {
        outln!("work tree: locked ({} of {} sealed files are envelopes); run `git seal unlock` once the key is here", s.locked.len(), s.sealed_files);
        for path in &s.locked {
            outln!("  locked: {path}");
        }
    }
    if s.drivers_missing.is_empty() {
        outln!("drivers: filter, diff and merge configured");
    } else {
        outln!(
            "drivers: missing or wrong: {} (run `git seal init`)",
            s.drivers_missing.join(", ")
        );
    }
    if s.hooks_installed.is_empty() {
        outln!("hooks: none installed");
    } else {
        outln!("hooks: {}", s.hooks_installed.join(", "));
    }
    match (&s.audit.tip, s.audit.verified) {
        (Some(tip), Some(true)) => outln!(
            "audit chain: refs/seal/audit at {tip}, {} entries, verified",
            s.audit.entries
        ),
        (Some(tip), _) => outln!(
            "audit chain: refs/seal/audit at {tip}, {} entries, NOT verified: {} finding(s) (run `git seal audit verify`)",
            s.audit.entries, s.audit.findings
        ),
        (None, _) => outln!("audit chain: none (refs/seal/audit does not exist; run `git seal init`)"),
    }
    Ok(())
}
