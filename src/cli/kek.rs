//! `git seal kek`: versioned KEKs and their private halves.

use std::io::{BufRead as _, IsTerminal as _, Read as _};
use std::path::PathBuf;

use git_seal::keys::ProviderInfo;
use git_seal::kid::Kid;
use git_seal::lifecycle::kek::{self, NewKek};
use git_seal::workspace::Workspace;

use super::error::{CommandError, CommandResult};
use super::report::audit_warning;

/// Key-encryption keys: list, add, verify, remove, and move their private
/// halves.
///
/// Each KEK has a committed record in `.seal/keys/<kid>.json` with a
/// version and a status: `pending` (added, not yet a recipient), `active`
/// (new envelopes are wrapped to it), `retired` (replaced; still opens
/// history, its key file archived) or `removed` (no envelope needs it).
/// Commands that change records stage them; you commit.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: KekCommand,
}

#[derive(clap::Subcommand, Debug)]
enum KekCommand {
    List(ListArgs),
    Add(AddArgs),
    Show(ShowArgs),
    /// Make a personal KEK on this machine and print its public key.
    ///
    /// For joining a team with your own key: the private half stays in a
    /// key file here, outside any repository. Send the printed public key
    /// to the repository's owner, who runs `git seal kek add --public-key
    /// KEY --name YOU` and `git seal recipients add KID`.
    Keygen,
    Verify(VerifyArgs),
    Remove(RemoveArgs),
    Export(ExportArgs),
    Import(ImportArgs),
}

/// List every KEK: status, custody, age, rotation due date, whether its
/// private half is here, and how many envelopes in HEAD and the index are
/// wrapped to it.
#[derive(clap::Args, Debug)]
struct ListArgs {
    /// Print JSON (`git-seal.kek-list/v1`) for tools.
    #[arg(long)]
    json: bool,
}

/// Add a KEK version without making it a recipient (status `pending`).
///
/// With no option, makes a new key pair here (its private half in a key
/// file). With `--public-key`, adds a teammate's own public key, which they
/// print with `git seal kek keygen` (or `git seal kek show KID`); only they
/// hold its private half. Then make it a recipient with `git seal
/// recipients add KID`, or rotate to it with `git seal rotate --to KID`.
#[derive(clap::Args, Debug)]
struct AddArgs {
    /// Where a new key pair's private half lives.
    #[arg(long, value_parser = super::init::provider_parser(), conflicts_with = "public_key")]
    provider: Option<&'static ProviderInfo>,
    /// The AWS KMS key that guards the new KEK (`--provider aws-kms`): an
    /// ARN, or alias/NAME.
    #[arg(long, value_name = "ARN", conflicts_with = "public_key")]
    kms_key: Option<String>,
    /// A teammate's X25519 public key (base64, as `git seal kek show` prints).
    #[arg(long, value_name = "KEY")]
    public_key: Option<String>,
    /// A label for the key (`alice`, `recovery`).
    #[arg(long, value_name = "LABEL", requires = "public_key")]
    name: Option<String>,
}

/// Print a KEK's public key (never its private half), to hand to whoever
/// adds it with `git seal kek add --public-key`.
#[derive(clap::Args, Debug)]
struct ShowArgs {
    kid: Kid,
}

/// Check that a KEK works here: wrap and unwrap a test DEK with it, then
/// open every envelope in HEAD and the index wrapped to it, with that key
/// alone. Each failure names the path and the kid; exit 1 if any.
#[derive(clap::Args, Debug)]
struct VerifyArgs {
    /// The KEK to verify.
    kid: Kid,
}

/// Mark a KEK removed, once no envelope in HEAD or the index is wrapped to
/// it and it is no recipient.
///
/// With `--destroy`, also erase its private half on this machine (the key
/// file, archived or not): crypto-erasure. After that, history sealed only
/// to this KEK cannot be opened here, by anyone, ever; other copies of the
/// key (a CI secret, a teammate's machine, a backup) are not reached.
#[derive(clap::Args, Debug)]
struct RemoveArgs {
    kid: Kid,
    /// Erase the private half here too, after confirmation.
    #[arg(long)]
    destroy: bool,
    /// Confirm `--destroy` without asking (for scripts).
    #[arg(long, requires = "destroy")]
    yes: bool,
}

/// Write a software KEK's private half to a new file (mode 0600), to move
/// it to another machine (`git seal kek import`). Never prints the key and
/// never overwrites a file. Delete the file once imported.
#[derive(clap::Args, Debug)]
struct ExportArgs {
    kid: Kid,
    /// The file to create.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Store a KEK's private half, from a file `git seal kek export` wrote (or
/// `-` for standard input), as a key file on this machine.
#[derive(clap::Args, Debug)]
struct ImportArgs {
    file: PathBuf,
}

pub(crate) fn run(args: Args) -> CommandResult<u8> {
    match args.command {
        KekCommand::List(args) => list(args),
        KekCommand::Add(args) => add(args),
        KekCommand::Show(args) => show(args),
        KekCommand::Keygen => keygen(),
        KekCommand::Verify(args) => verify(args),
        KekCommand::Remove(args) => remove(args),
        KekCommand::Export(args) => export(args),
        KekCommand::Import(args) => import(args),
    }
}

fn workspace() -> CommandResult<Workspace> {
    Ok(Workspace::here()?)
}

fn list(args: ListArgs) -> CommandResult<u8> {
    let ws = workspace()?;
    let keks = kek::list(&ws)?;
    if args.json {
        let doc = serde_json::json!({"schema": "git-seal.kek-list/v1", "keks": keks});
        outln!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("serializes")
        );
        return Ok(0);
    }
    for k in &keks {
        let age = k.age_days.map_or("?".to_owned(), |d| format!("{d}d"));
        outln!(
            "{}  v{:<3} {:<8} {:<8} {}  age {:<6} due {:<20} {:<8} HEAD {:>5}  index {:>5}{}",
            k.kid,
            k.version,
            k.status,
            k.custody,
            &k.created_at,
            age,
            match (&k.due, k.due_state) {
                (Some(due), Some(state)) if state != "ok" => format!("{due} ({state})"),
                (Some(due), _) => due.clone(),
                _ => "-".to_owned(),
            },
            if k.here { "here" } else { "not here" },
            k.envelopes_head,
            k.envelopes_index,
            k.name
                .as_deref()
                .map(|n| format!("  ({n})"))
                .unwrap_or_default()
        );
    }
    Ok(0)
}

fn add(args: AddArgs) -> CommandResult<u8> {
    let ws = workspace()?;
    let new = match args.public_key {
        Some(key) => NewKek::Public {
            key,
            name: args.name,
        },
        None => NewKek::Generate {
            provider: args.provider,
            kms_key: args.kms_key,
        },
    };
    let added = kek::add(&ws, new)?;
    let kid = &added.record.kid;
    if added.existed {
        outln!(
            "git-seal: {kid} is already listed ({}); nothing to add",
            added.record.status.as_str()
        );
        return Ok(0);
    }
    outln!(
        "git-seal: added {kid} (version {}, pending, staged .seal/keys/{kid}.json)",
        added.record.version
    );
    outln!("next: `git seal recipients add {kid}` to wrap envelopes to it too, or `git seal rotate --to {kid}` to replace the active KEK with it; then commit");
    audit_warning("kek add", added.audit);
    Ok(0)
}

fn show(args: ShowArgs) -> CommandResult<u8> {
    let ws = Workspace::here().ok();
    outln!("{}", kek::public_key(ws.as_ref(), &args.kid)?);
    Ok(0)
}

fn keygen() -> CommandResult<u8> {
    let (kid, public, path) = kek::keygen()?;
    eprintln!(
        "git-seal: made {kid}; its private half is in {} (keep it there)",
        path.display()
    );
    eprintln!("git-seal: send this public key to the repository's owner, who runs `git seal kek add --public-key KEY --name YOU`:");
    outln!("{public}");
    Ok(0)
}

fn verify(args: VerifyArgs) -> CommandResult<u8> {
    let ws = workspace()?;
    let report = kek::verify(&ws, &args.kid)?;
    match &report.round_trip {
        Ok(()) => outln!(
            "git-seal: {}: a test DEK wrapped and unwrapped here",
            report.kid
        ),
        Err(e) => outln!("git-seal: {}: cannot wrap and unwrap here: {e}", report.kid),
    }
    for (place, path, why) in &report.failures {
        outln!("{path} ({}): {}: {why}", place.as_str(), report.kid);
    }
    outln!(
        "git-seal: {}: {} envelope(s) in HEAD and the index opened, {} did not",
        report.kid,
        report.opened,
        report.failures.len()
    );
    Ok(if report.ok() { 0 } else { 1 })
}

fn remove(args: RemoveArgs) -> CommandResult<u8> {
    let ws = workspace()?;
    if args.destroy && !args.yes {
        confirm(&args.kid)?;
    }
    let done = kek::remove(&ws, &args.kid, args.destroy)?;
    if done.marked {
        outln!(
            "git-seal: {} is removed (staged .seal/keys/{}.json); commit it",
            done.kid,
            done.kid
        );
    } else if !args.destroy {
        outln!("git-seal: {} was removed already", done.kid);
    }
    if args.destroy {
        if done.erased.is_empty() {
            outln!(
                "git-seal: no private half of {} here (no key file, not in this clone's token): nothing to erase",
                done.kid
            );
        }
        for place in &done.erased {
            outln!("git-seal: erased {place}");
        }
        outln!("git-seal: history sealed only to {} can no longer be opened with a key from this machine", done.kid);
    }
    if done.still_in_env {
        eprintln!("git-seal: warning: GIT_SEAL_KEK still holds {}; remove it from that secret (CI settings) too", done.kid);
    }
    for audit in done.audit {
        audit_warning("kek remove", audit);
    }
    Ok(0)
}

/// Ask, on a terminal, for the kid to be typed back before erasing it.
fn confirm(kid: &Kid) -> CommandResult<()> {
    if !std::io::stdin().is_terminal() {
        return Err(CommandError::user(format!(
            "refusing to erase the private half of {kid} without confirmation"
        ))
        .with_hint("run it on a terminal, or pass --yes in a script"));
    }
    eprint!("Erasing {kid} cannot be undone: history sealed only to it becomes unreadable here.\nType the kid to confirm: ");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != kid.as_str() {
        return Err(CommandError::user("not confirmed; nothing was changed"));
    }
    Ok(())
}

fn export(args: ExportArgs) -> CommandResult<u8> {
    if args.out.as_os_str() == "-" {
        return Err(CommandError::usage(
            "git-seal never prints a private key; give --out a file path",
        ));
    }
    kek::export(&args.kid, &args.out)?;
    outln!(
        "git-seal: wrote the private half of {} to {} (mode 0600); move it over a channel you trust, run `git seal kek import FILE` there, then delete both copies of the file",
        args.kid,
        args.out.display()
    );
    Ok(0)
}

fn import(args: ImportArgs) -> CommandResult<u8> {
    let mut text = zeroize::Zeroizing::new(String::new());
    if args.file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        use std::os::unix::fs::PermissionsExt as _;
        let file = std::fs::File::open(&args.file)
            .map_err(|e| CommandError::user(format!("cannot read {}: {e}", args.file.display())))?;
        if file.metadata()?.permissions().mode() & 0o077 != 0 {
            eprintln!(
                "git-seal: warning: {} is readable by group or others; treat the key as exposed if others could read it",
                args.file.display()
            );
        }
        std::io::BufReader::new(file).read_to_string(&mut text)?;
    }
    let done = kek::import(&text)?;
    if done.existed {
        outln!(
            "git-seal: {} is already here ({})",
            done.kid,
            done.path.display()
        );
    } else {
        outln!("git-seal: stored {} in {}", done.kid, done.path.display());
    }
    if let Ok(ws) = Workspace::here() {
        match ws.record(&done.kid) {
            Some(r) => outln!(
                "git-seal: this repository lists {} as {}",
                done.kid,
                r.status.as_str()
            ),
            None => outln!("git-seal: this repository does not list {}", done.kid),
        }
    }
    Ok(0)
}
