//! `git seal audit …`: read, verify, exchange and extend the signed audit
//! chain in `refs/seal/audit` (docs/audit.md).

use std::path::PathBuf;

use serde_json::{json, Map, Value};

use super::error::{CommandError, CommandResult};
use git_seal::audit::sync::{self, SyncError, Synced};
use git_seal::audit::{self, chain, entry, log, signer, verify, NewEntry, Signer, When, REF};
use git_seal::printable::escape;
use git_seal::repo::{Oid, Repo};
use git_seal::workspace::Workspace;

/// The signed audit chain: who sealed, rotated or changed what, and when.
///
/// Every sealing event appends one entry to `refs/seal/audit`: a commit whose
/// tree holds `entry.json`, signed with the actor's ed25519 signer key as an
/// SSH signature. Verifying needs no secret, so CI can run `git seal audit
/// verify` on every push.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(clap::Subcommand, Debug)]
pub(crate) enum AuditCommand {
    Log(LogArgs),
    Verify(VerifyArgs),
    Record(RecordArgs),
    Sync(SyncArgs),
    AllowedSigners(AllowedSignersArgs),
    #[command(subcommand)]
    Signer(SignerCommand),
    #[command(subcommand)]
    Approve(ApproveCommand),
}

/// Approve, as a trusted signer, a change that would otherwise be refused
/// because once sealed, a path stays sealed.
///
/// A commit may store a path that was sealed in its parent as plaintext,
/// or drop a sealed glob, a sealed `.gitattributes` pattern, a recipient
/// or the path binding, only when the audit chain holds such a signed
/// approval. pre-commit, `git seal check` and pre-receive name the exact
/// command in their finding. Publish it with `git seal audit sync`.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum ApproveCommand {
    /// Let these paths be stored as plaintext from now on.
    UnsealPath {
        /// Repository paths, as the finding names them.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<String>,
    },
    /// Let the policy drop these rules (`sealed:GLOB`, `attribute:PATTERN`,
    /// `recipient:KID`, `bind_path_aad`).
    Policy {
        #[arg(required = true, value_name = "ITEM")]
        items: Vec<String>,
    },
}

/// Record commits that have no audit entry, as a trusted signer who has
/// reviewed them.
///
/// `git seal audit verify --coverage` lists commits that changed sealed
/// paths and have no entry: made without git-seal's hooks (a web editor, a
/// tool that runs no hooks) or whose hook failed. This appends a `seal`
/// entry marked `late` for each. It refuses unless the chain verifies and
/// trusts your signer. Publish with `git seal audit sync`.
#[derive(clap::Args, Debug)]
pub(crate) struct RecordArgs {
    /// The commits (any revision that names one).
    #[arg(required = true, value_name = "COMMIT")]
    pub commits: Vec<String>,
}

/// List the chain's entries, newest first.
///
/// One line per entry: seq, entry commit, time, event, actor, and what it
/// records (paths, kids, reasons), with control characters escaped. The
/// filters narrow the list; every one given must hold.
#[derive(clap::Args, Debug)]
pub(crate) struct LogArgs {
    /// Print JSON (schema `git-seal.audit-log/v1`, docs/json.md): the
    /// entries, newest first, each with its commit and parents.
    #[arg(long)]
    pub json: bool,
    /// The chain to read (default: refs/seal/audit).
    #[arg(long, value_name = "REF", default_value = REF)]
    pub r#ref: String,
    /// Only entries naming this path, a path under this directory, or a
    /// path this glob matches (policy glob syntax: `*.env` matches at any
    /// depth, `secrets/**` from the top; a pattern that is not a valid
    /// glob is only a path).
    #[arg(long, value_name = "GLOB-or-PATH")]
    pub path: Option<String>,
    /// Only entries whose actor's name or email contains TEXT (any case),
    /// or whose signer fingerprint starts with it (`SHA256:…`).
    #[arg(long, value_name = "TEXT")]
    pub actor: Option<String>,
    /// Only entries of this event (`seal`, `rotate`, `accept-finding`, …);
    /// repeat for several.
    #[arg(long, value_name = "NAME")]
    pub event: Vec<String>,
    /// Only entries made at or after this time: RFC 3339
    /// (`2026-11-23T10:00:00Z`, `…+01:00`) or a date (`2026-11-23`, from
    /// its start, UTC).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only entries made at or before this time: RFC 3339 or a date
    /// (through its end, UTC).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
}

impl LogArgs {
    /// The filter these options ask for (bad usage: an unknown event or a
    /// bad time).
    fn filter(&self) -> CommandResult<log::Filter> {
        let usage = CommandError::usage;
        let mut filter = log::Filter::default();
        if let Some(path) = &self.path {
            filter = filter.path(path);
        }
        if let Some(actor) = &self.actor {
            filter = filter.actor(actor);
        }
        for event in &self.event {
            filter = filter.event(event).map_err(usage)?;
        }
        if let Some(since) = &self.since {
            filter = filter.since(since).map_err(usage)?;
        }
        if let Some(until) = &self.until {
            filter = filter.until(until).map_err(usage)?;
        }
        Ok(filter)
    }
}

/// Verify every entry's signature, trust, schema and sequence number.
///
/// Checks each entry's SSH signature, that its signer was trusted at that
/// point of the chain, its schema and its sequence number.
///
/// The root of trust is the signer of the chain's `init` entry, or the
/// fingerprint pinned with `--trust`; further signers are trusted from the
/// `signer-add` entry (signed by an already-trusted signer) that adds them,
/// and no longer from the `signer-remove` entry that removes them: an
/// entry a removed signer signs after its removal is a finding, the ones
/// it signed before stay valid.
/// Exit 1 with one line per finding, naming the entry's commit.
#[derive(clap::Args, Debug)]
pub(crate) struct VerifyArgs {
    /// A tip seen earlier (e.g. in the last CI run): fail unless it is still
    /// in the chain, i.e. the chain only grew.
    #[arg(long, value_name = "OLD_TIP")]
    pub since: Option<String>,
    /// Require the root (`init`) entry to be signed by this signer
    /// (`SHA256:…`, as `git seal audit allowed-signers` and `ssh-keygen -l`
    /// show it).
    #[arg(long, value_name = "FINGERPRINT")]
    pub trust: Option<String>,
    /// Print the result as JSON (schema `git-seal.audit-verify/v1`,
    /// docs/json.md).
    #[arg(long)]
    pub json: bool,
    /// The chain to verify (default: refs/seal/audit).
    #[arg(long, value_name = "REF", default_value = REF)]
    pub r#ref: String,
    /// Also check coverage: every commit of RANGE (default: HEAD's history
    /// since the chain began) that changed sealed paths has its entry
    /// (`seal`, `merge`, `policy`, or `rewrite` naming it). Each commit
    /// without one is a finding.
    #[arg(
        long,
        value_name = "RANGE",
        num_args = 0..=1,
        default_missing_value = "",
        require_equals = false
    )]
    pub coverage: Option<String>,
}

/// Exchange the chain with a remote: fetch, merge, push.
///
/// Fetches the remote's chain, takes its new entries, merges diverged
/// chains with a signed `chain-merge` entry, and pushes.
#[derive(clap::Args, Debug)]
pub(crate) struct SyncArgs {
    /// The remote (default: `origin`, or the only remote).
    pub remote: Option<String>,
}

/// Export the trusted signers for stock `git verify-commit`.
///
/// Writes them as an SSH allowed-signers file, so that `git verify-commit`
/// (with `gpg.ssh.allowedSignersFile`) can check every entry without
/// git-seal.
#[derive(clap::Args, Debug)]
pub(crate) struct AllowedSignersArgs {
    /// Write to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// Manage who may sign audit entries.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum SignerCommand {
    /// Trust another signer key from now on.
    ///
    /// Appends a `signer-add` entry signed by you; you must already be
    /// trusted.
    Add(SignerAddArgs),
    /// Stop trusting a signer key from now on.
    ///
    /// Appends a `signer-remove` entry signed by you; you must be trusted.
    /// The entries the removed signer made before stay valid; any entry it
    /// signs after this one makes `git seal audit verify` fail, its hooks
    /// stop recording events, and `git seal audit allowed-signers` no
    /// longer lists it. The last trusted signer cannot be removed (nobody
    /// could append entries after it); you may remove yourself while
    /// another trusted signer remains. Publish it with `git seal audit
    /// sync`.
    Remove(SignerRemoveArgs),
    /// Show your own signer's public key (made on first need).
    ///
    /// Hand it to a trusted signer for `git seal audit signer add`.
    Show,
}

#[derive(clap::Args, Debug)]
pub(crate) struct SignerAddArgs {
    /// The new signer's public key: an `ssh-ed25519 AAAA…` line, or a file
    /// holding one (e.g. the output of `git seal audit signer show`).
    #[arg(value_name = "PUBLIC_KEY")]
    pub public_key: String,
    /// Whose key it is (default: the key's comment, if it is an address).
    #[arg(long)]
    pub email: Option<String>,
}

#[derive(clap::Args, Debug)]
pub(crate) struct SignerRemoveArgs {
    /// The signer's fingerprint (`SHA256:…`), as `git seal audit verify
    /// --json` lists the trusted signers and `git seal audit signer show`
    /// prints your own.
    #[arg(value_name = "FINGERPRINT")]
    pub fingerprint: String,
}

pub(crate) fn run(args: Args) -> CommandResult<u8> {
    let repo = Repo::from_env()?;
    match args.command {
        AuditCommand::Log(args) => log(&repo, args),
        AuditCommand::Verify(args) => verify_command(&repo, args),
        AuditCommand::Record(args) => record(repo, args),
        AuditCommand::Sync(args) => sync(&repo, args),
        AuditCommand::AllowedSigners(args) => allowed_signers(&repo, args),
        AuditCommand::Signer(SignerCommand::Add(args)) => signer_add(&repo, args),
        AuditCommand::Signer(SignerCommand::Remove(args)) => signer_remove(&repo, args),
        AuditCommand::Signer(SignerCommand::Show) => signer_show(),
        AuditCommand::Approve(command) => approve(&repo, command),
    }
}

/// The chain's tip at `name`, or an error that says how to get one.
fn tip_of(repo: &Repo, name: &str) -> CommandResult<Oid> {
    repo.ref_target(name)
        .or_else(|| (name != REF).then(|| repo.resolve_commit(name)).flatten())
        .ok_or_else(|| {
            CommandError::user(format!(
                "there is no audit chain at {name} in this repository"
            ))
            .with_hint("`git seal init` starts one; `git seal audit sync` fetches a remote's")
        })
}

fn log(repo: &Repo, args: LogArgs) -> CommandResult<u8> {
    let filter = args.filter()?;
    let tip = tip_of(repo, &args.r#ref)?;
    let (order, commits) = verify::walk(repo, tip)?;
    let mut unreadable = 0;
    let mut listed = Vec::new();
    for id in order.iter().rev() {
        let commit = &commits[id];
        match chain::read_entry(repo, commit.tree) {
            Ok(entry) if filter.matches(&entry) => {
                listed.push((*id, commit.parents.clone(), entry));
            }
            Ok(_) => {}
            Err(reason) => {
                unreadable += 1;
                eprintln!("git-seal: audit entry {id}: {reason}");
            }
        }
    }
    if args.json {
        let entries: Vec<Value> = listed
            .iter()
            .map(|(id, parents, entry)| {
                let mut object = Map::new();
                object.insert("commit".into(), json!(id.to_string()));
                object.insert(
                    "parents".into(),
                    json!(parents.iter().map(Oid::to_string).collect::<Vec<_>>()),
                );
                if let Value::Object(fields) = serde_json::to_value(entry).expect("entry") {
                    object.extend(fields);
                }
                Value::Object(object)
            })
            .collect();
        let doc = json!({"schema": "git-seal.audit-log/v1", "entries": entries});
        outln!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        for (id, _, entry) in &listed {
            outln!(
                "{:>5}  {}  {}  {:<12} {} <{}>  {}",
                entry.seq,
                &id.to_string()[..12],
                escape(&entry.time),
                escape(&entry.event),
                escape(&entry.actor.name),
                escape(&entry.actor.email),
                escape(&summary(entry))
            );
        }
    }
    Ok(u8::from(unreadable > 0))
}

/// One line of what an entry records.
fn summary(entry: &entry::Entry) -> String {
    let short = |field: &str| {
        entry
            .data_str(field)
            .map(|s| s.chars().take(12).collect::<String>())
            .unwrap_or_default()
    };
    let paths = || {
        let paths: Vec<&str> = entry
            .data
            .get("paths")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|p| p.get("path").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        let mut text = paths.iter().take(3).copied().collect::<Vec<_>>().join(", ");
        if paths.len() > 3 {
            text.push_str(&format!(" and {} more", paths.len() - 3));
        }
        text
    };
    let strings = |field: &str| entry.data_strs(field).join(", ");
    let kids = || match log::kids_of(entry).join(", ") {
        k if k.is_empty() => String::new(),
        k => format!("; kids {k}"),
    };
    let number = |field: &str| {
        entry
            .data
            .get(field)
            .and_then(Value::as_u64)
            .map_or("?".to_owned(), |n| n.to_string())
    };
    let scope = || match strings("paths") {
        s if s.is_empty() => String::new(),
        s => format!(" for {s}"),
    };
    match entry.event.as_str() {
        entry::EVENT_INIT => format!("KEKs {}", strings("kids")),
        entry::EVENT_SIGNER_ADD => format!(
            "trusts {} <{}>",
            entry.data_str("fingerprint").unwrap_or_default(),
            entry.data_str("email").unwrap_or_default()
        ),
        entry::EVENT_SIGNER_REMOVE => format!(
            "stops trusting {}",
            entry.data_str("fingerprint").unwrap_or_default()
        ),
        entry::EVENT_CHAIN_MERGE => format!(
            "merged the chain from {}",
            entry.data_str("remote").unwrap_or("another clone")
        ),
        "seal" | "merge" => format!("commit {}: {}{}", short("commit"), paths(), kids()),
        "migrate" => format!("{}{}", paths(), kids()),
        audit::approvals::EVENT_ACCEPT_FINDING => format!(
            "accepts the {} finding at {}:{}: {}",
            entry.data_str("kind").unwrap_or_default(),
            short("commit"),
            entry.data_str("path").unwrap_or_default(),
            entry.data_str("reason").unwrap_or_default()
        ),
        "policy" if entry.data.contains_key("allow") => {
            format!("approves dropping {}", strings("allow"))
        }
        "policy" => format!(
            "commit {} changed {}",
            short("commit"),
            git_seal::policy::PATH
        ),
        "unseal-path" => format!("approves plaintext at {}", strings("paths")),
        entry::EVENT_KEK_ADD => format!(
            "{} v{} pending{}",
            entry.data_str("kid").unwrap_or_default(),
            number("version"),
            entry
                .data_str("name")
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        ),
        entry::EVENT_ROTATE => format!(
            "{} -> {}: {} re-wrapped, {} re-encrypted",
            entry.data_str("from").unwrap_or_default(),
            entry.data_str("to").unwrap_or_default(),
            number("rewrapped"),
            number("reencrypted")
        ),
        entry::EVENT_RECIPIENT_ADD => format!(
            "{}{}: {} re-wrapped",
            entry.data_str("kid").unwrap_or_default(),
            scope(),
            number("rewrapped")
        ),
        entry::EVENT_RECIPIENT_REMOVE => format!(
            "{}{}: {} re-encrypted, {} blob(s) in history stay readable to it",
            entry.data_str("kid").unwrap_or_default(),
            scope(),
            number("reencrypted"),
            number("history_blobs")
        ),
        entry::EVENT_KEK_REMOVE => {
            format!("{} removed", entry.data_str("kid").unwrap_or_default())
        }
        entry::EVENT_KEK_DESTROY => format!(
            "{}: private half erased ({})",
            entry.data_str("kid").unwrap_or_default(),
            match strings("erased") {
                s if s.is_empty() => "none was here".to_owned(),
                s => s,
            }
        ),
        _ => String::new(),
    }
}

fn verify_command(repo: &Repo, args: VerifyArgs) -> CommandResult<u8> {
    if let Some(pin) = args.trust.as_ref().filter(|t| !t.starts_with("SHA256:")) {
        return Err(CommandError::usage(format!(
            "--trust {pin:?} is not an SSH fingerprint (`SHA256:…`, as `git seal audit verify --json` shows the root)"
        )));
    }
    let tip = tip_of(repo, &args.r#ref)?;
    let options = verify::Options {
        since: args.since,
        trust: args.trust,
    };
    let report = verify::verify(repo, tip, &options)?;
    let coverage = match &args.coverage {
        None => None,
        Some(range) => {
            let ws = Workspace::load(repo.reopen()?)?;
            let range = Some(range.as_str()).filter(|r| !r.is_empty());
            Some(git_seal::audit::coverage::coverage(&ws, tip, range)?)
        }
    };
    let covered = coverage.as_ref().is_none_or(|c| c.unrecorded.is_empty());
    if args.json {
        let findings: Vec<Value> = report
            .findings
            .iter()
            .map(|f| json!({"commit": f.commit.map(|c| c.to_string()), "reason": f.reason}))
            .collect();
        let signers: Vec<Value> = report
            .signers
            .iter()
            .map(|s| {
                json!({
                    "fingerprint": s.fingerprint,
                    "email": s.email,
                    "public_key": s.public_key,
                    "added_by": s.added_by.to_string(),
                })
            })
            .collect();
        let removed: Vec<Value> = report
            .removed
            .iter()
            .map(|r| {
                json!({
                    "fingerprint": r.fingerprint,
                    "removed_by": r.removed_by.to_string(),
                    "seq": r.seq,
                })
            })
            .collect();
        let out = json!({
            "schema": "git-seal.audit-verify/v1",
            "ok": report.ok(),
            "ref": args.r#ref,
            "tip": report.tip.to_string(),
            "entries": report.entries,
            "root": report.root,
            "signers": signers,
            "removed": removed,
            "findings": findings,
            "coverage": coverage,
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for finding in &report.findings {
            match finding.commit {
                Some(commit) => outln!("{}: entry {commit}: {}", args.r#ref, finding.reason),
                None => outln!("{}: {}", args.r#ref, finding.reason),
            }
        }
        if report.ok() {
            let removed = match report.removed.len() {
                0 => String::new(),
                n => format!(" ({n} removed)"),
            };
            outln!(
                "audit chain verified: {} entries, tip {}, {} trusted signer(s){removed}, root {}",
                report.entries,
                report.tip,
                report.signers.len(),
                report.root.as_deref().unwrap_or("(none)")
            );
        } else {
            eprintln!(
                "git-seal: audit chain NOT verified: {} finding(s) in {} entries",
                report.findings.len(),
                report.entries
            );
        }
        if let Some(coverage) = &coverage {
            print_coverage(coverage)?;
        }
    }
    Ok(u8::from(!report.ok() || !covered))
}

/// One line per commit with no entry, then a summary.
fn print_coverage(coverage: &git_seal::audit::coverage::Coverage) -> CommandResult<()> {
    const NAMED: usize = 3;
    for missing in &coverage.unrecorded {
        let more = match missing.paths.len().saturating_sub(NAMED) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        let named: Vec<String> = missing
            .paths
            .iter()
            .take(NAMED)
            .map(|p| escape(p).into_owned())
            .collect();
        outln!(
            "coverage: commit {} changed sealed paths ({}{more}) and has no audit entry",
            missing.commit,
            named.join(", ")
        );
    }
    if coverage.unrecorded.is_empty() {
        outln!(
            "coverage: every one of {} commit(s) that changed sealed paths in {} has its entry ({} commit(s) checked)",
            coverage.sealing,
            escape(&coverage.range),
            coverage.commits
        );
    } else {
        eprintln!(
            "git-seal: coverage: {} of {} commit(s) that changed sealed paths in {} have no entry: made without git-seal's hooks, or their hook failed. The committer's next commit records their own; a trusted signer who has reviewed a commit records it with `git seal audit record COMMIT`",
            coverage.unrecorded.len(),
            coverage.sealing,
            escape(&coverage.range)
        );
    }
    Ok(())
}

fn sync(repo: &Repo, args: SyncArgs) -> CommandResult<u8> {
    let remote = match args.remote {
        Some(remote) => remote,
        None => sync::default_remote(repo).map_err(|e| match e {
            e @ SyncError::SeveralRemotes(_) => CommandError::usage(e),
            e => e.into(),
        })?,
    };
    match sync::sync(repo, &remote) {
        Ok(Synced::InSync(tip)) => outln!("git-seal: audit chain in sync with {remote} at {tip}"),
        Ok(Synced::Pushed(tip)) => outln!("git-seal: audit chain pushed to {remote} at {tip}"),
        Err(e @ SyncError::NoChain { .. }) => {
            return Err(CommandError::from(e).with_hint("`git seal init` starts one"))
        }
        Err(e @ SyncError::Unrelated { .. }) => {
            return Err(CommandError::from(e).with_hint("keep the chain whose `init` entry is the repository's (see `git seal audit log --ref refs/seal-remote/REMOTE/audit`) and delete the other with `git update-ref -d`"))
        }
        Err(SyncError::Unverified { remote, findings }) => {
            for finding in &findings {
                eprintln!(
                    "git-seal: entry {}: {}",
                    finding
                        .commit
                        .map_or_else(|| "-".to_owned(), |c| c.to_string()),
                    finding.reason
                );
            }
            return Err(SyncError::Unverified { remote, findings }.into());
        }
        Err(e) => return Err(e.into()),
    }
    Ok(0)
}

/// The local chain's verification report, or an error (saying `consequence`)
/// when it has findings: trust read from a bad chain means nothing.
fn verified_chain(repo: &Repo, consequence: &str) -> CommandResult<verify::Report> {
    let tip = tip_of(repo, REF)?;
    let report = verify::verify(repo, tip, &verify::Options::default())?;
    if !report.ok() {
        return Err(CommandError::user(format!(
            "{REF} does not verify ({} finding(s)); {consequence}",
            report.findings.len()
        ))
        .with_hint("run `git seal audit verify` to see why"));
    }
    Ok(report)
}

/// This user's signer, or an error (saying it cannot do `what`) when the
/// chain in `report` does not trust it.
fn trusted_me(report: &verify::Report, what: &str) -> CommandResult<Signer> {
    let me = Signer::load_or_create()?;
    if !report.trusts(me.fingerprint()) {
        return Err(CommandError::user(format!(
            "your signer {} is not trusted by {REF}, so it cannot {what}",
            me.fingerprint()
        ))
        .with_hint(
            "ask a trusted signer (see `git seal audit verify --json`) to run this command",
        ));
    }
    Ok(me)
}

fn allowed_signers(repo: &Repo, args: AllowedSignersArgs) -> CommandResult<u8> {
    let report = verified_chain(repo, "the signers it trusts cannot be exported")?;
    let mut text = String::new();
    for s in &report.signers {
        let principal = if s.email.is_empty() || s.email.contains(char::is_whitespace) {
            s.fingerprint.as_str()
        } else {
            s.email.as_str()
        };
        text.push_str(&format!(
            "{principal} namespaces=\"git\" {}\n",
            s.public_key
        ));
    }
    match args.out {
        Some(path) => {
            git_seal::atomic_file::write_shared(&path, text.as_bytes())?;
            eprintln!(
                "git-seal: wrote {} signer(s) to {}; check entries with `git -c gpg.ssh.allowedSignersFile={} verify-commit COMMIT`",
                report.signers.len(),
                path.display(),
                path.display()
            );
        }
        None => out!("{text}"),
    }
    Ok(0)
}

fn signer_add(repo: &Repo, args: SignerAddArgs) -> CommandResult<u8> {
    let text = match std::fs::read_to_string(&args.public_key) {
        Ok(text) => text,
        Err(_) if args.public_key.starts_with("ssh-") => args.public_key.clone(),
        Err(e) => {
            return Err(CommandError::user(format!(
                "cannot read the public key file {}: {e}",
                args.public_key
            )))
        }
    };
    let (public_key, fingerprint, comment) = signer::parse_public(&text)
        .map_err(|e| CommandError::user(format!("{}: {e}", args.public_key)))?;
    let email = match args
        .email
        .or_else(|| comment.contains('@').then_some(comment))
    {
        Some(email) if !email.is_empty() && !email.contains(char::is_whitespace) => email,
        Some(email) => {
            return Err(CommandError::usage(format!(
                "{email:?} is not an address (no whitespace)"
            )))
        }
        None => {
            return Err(CommandError::usage(
                "say whose key this is with --email (the key has no address comment)",
            ))
        }
    };
    let report = verified_chain(repo, "fix it before adding signers")?;
    if report.trusts(&fingerprint) {
        outln!("git-seal: {fingerprint} is already a trusted signer");
        return Ok(0);
    }
    let me = trusted_me(&report, "add signers")?;
    let mut data = Map::new();
    data.insert("public_key".into(), json!(public_key));
    data.insert("fingerprint".into(), json!(fingerprint));
    data.insert("email".into(), json!(email));
    let new = NewEntry {
        event: entry::EVENT_SIGNER_ADD,
        data,
    };
    let id = audit::append(repo, &me, &new, When::Always)?.expect("always appends");
    outln!("git-seal: {fingerprint} <{email}> is now a trusted signer (entry {id}); run `git seal audit sync` to publish it");
    Ok(0)
}

fn signer_remove(repo: &Repo, args: SignerRemoveArgs) -> CommandResult<u8> {
    let fingerprint = args.fingerprint.trim();
    if !fingerprint.starts_with("SHA256:") {
        return Err(CommandError::usage(format!(
            "{fingerprint:?} is not an SSH fingerprint (`SHA256:…`, as `git seal audit verify --json` lists the trusted signers)"
        )));
    }
    let report = verified_chain(repo, "fix it before removing signers")?;
    let me = trusted_me(&report, "remove signers")?;
    let Some(target) = report.signers.iter().find(|s| s.fingerprint == fingerprint) else {
        let why = match report.removed.iter().find(|r| r.fingerprint == fingerprint) {
            Some(r) => format!(
                "{fingerprint} is not a trusted signer of {REF}: entry seq {} ({}) already removed it",
                r.seq, r.removed_by
            ),
            None => format!(
                "{fingerprint} is not a trusted signer of {REF}, so there is nothing to remove"
            ),
        };
        return Err(CommandError::user(why)
            .with_hint("`git seal audit verify --json` lists the trusted signers' fingerprints"));
    };
    let yourself = fingerprint == me.fingerprint();
    if report.signers.len() == 1 {
        let whose = if yourself { "your signer " } else { "" };
        return Err(CommandError::user(format!(
            "{whose}{fingerprint} is the last trusted signer of {REF}; without it nobody could append entries"
        ))
        .with_hint("add another signer first (`git seal audit signer add`), then remove this one"));
    }
    let mut data = Map::new();
    data.insert("fingerprint".into(), json!(fingerprint));
    let new = NewEntry {
        event: entry::EVENT_SIGNER_REMOVE,
        data,
    };
    let id = audit::append(repo, &me, &new, When::Always)?.expect("always appends");
    outln!(
        "git-seal: {fingerprint} <{}> is no longer a trusted signer (entry {id}); the entries it signed before stay valid; run `git seal audit sync` to publish it",
        target.email
    );
    if report.root.as_deref() == Some(fingerprint) {
        outln!("git-seal: it signed the chain's `init` entry, which stays the root that `git seal audit verify --trust` pins");
    }
    if yourself {
        outln!(
            "git-seal: you removed your own signer; {} other trusted signer(s) remain, and from now on your hooks record nothing here",
            report.signers.len() - 1
        );
    }
    Ok(0)
}

fn signer_show() -> CommandResult<u8> {
    let me = Signer::load_or_create()?;
    outln!("{}", me.public_openssh());
    eprintln!(
        "git-seal: your signer is {}; a trusted signer adds it with `git seal audit signer add '{}' --email YOU`",
        me.fingerprint(),
        me.public_openssh()
    );
    Ok(0)
}

fn record(repo: Repo, args: RecordArgs) -> CommandResult<u8> {
    use git_seal::audit::approvals::ApproveError;
    use git_seal::audit::Recorded;
    let mut commits = Vec::new();
    for rev in &args.commits {
        commits.push(
            repo.resolve_commit(rev).ok_or_else(|| {
                CommandError::usage(format!("{rev:?} does not name a commit here"))
            })?,
        );
    }
    let ws = Workspace::load(repo)?;
    let done = audit::record(&ws, &commits).map_err(|e| match e {
        e @ ApproveError::Untrusted(_) => CommandError::from(e).with_hint(
            "ask a trusted signer (see `git seal audit verify --json`) to review and record these commits",
        ),
        e => e.into(),
    })?;
    for (commit, outcome) in commits.iter().zip(done) {
        match outcome {
            Recorded::Now(entry) => outln!("git-seal: recorded {commit} (entry {entry})"),
            Recorded::Already => outln!("git-seal: {commit} already has its entry"),
            Recorded::NotNeeded => {
                outln!("git-seal: {commit} changed no sealed path; it needs no entry")
            }
        }
    }
    outln!("git-seal: run `git seal audit sync` to publish the entries");
    Ok(0)
}

fn approve(repo: &Repo, command: ApproveCommand) -> CommandResult<u8> {
    use git_seal::audit::approvals::{self, Approval, ApproveError};
    let (what, items) = match command {
        ApproveCommand::UnsealPath { paths } => (Approval::UnsealPath, paths),
        ApproveCommand::Policy { items } => (Approval::Policy, items),
    };
    let id = approvals::approve(repo, what, &items).map_err(|e| match e {
        e @ ApproveError::BadItem(_) => CommandError::usage(e),
        e @ ApproveError::Untrusted(_) => CommandError::from(e).with_hint(
            "ask a trusted signer (see `git seal audit verify --json`) to run this command",
        ),
        e => e.into(),
    })?;
    outln!(
        "git-seal: approved {} (entry {id}); run `git seal audit sync` to publish it before you push",
        items.join(", ")
    );
    Ok(0)
}
