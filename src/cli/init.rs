//! `git seal init`: set up (or repair) a repository or a fresh clone.

use std::path::Path;

use super::error::{CommandError, CommandResult};
use git_seal::audit;
use git_seal::drivers;
use git_seal::keys::record::{self, KekRecord, Status};
use git_seal::keys::{self, env::EnvKeys, file::FileKeys, ProviderInfo};
use git_seal::policy;
use git_seal::repo::Repo;
use git_seal::secret::KekSecret;
use git_seal::workspace::{self, PROVIDER_KEY};

/// Set up git-seal in the current repository, or repair its configuration.
///
/// Creates a KEK (or adopts the one `.seal/keys/` names, as in a fresh clone),
/// writes `.seal/`, adds `PATTERN filter=seal diff=seal merge=seal` lines to
/// `.gitattributes`, records each PATTERN as required-sealed in
/// `.seal/policy.json`, configures the filter, diff and merge drivers, and
/// installs the hooks (as `git seal hooks install` does).
/// Running it again changes nothing that is already right and never replaces
/// an existing KEK.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where the KEK's private half lives: `file` (a key file in your user
    /// data directory; the default) or `env` (GIT_SEAL_KEK, for CI).
    #[arg(long, value_parser = provider_parser())]
    pub provider: Option<&'static ProviderInfo>,
    /// Paths to seal, as `.gitattributes` patterns (e.g. 'secrets/**', '*.env').
    #[arg(value_name = "PATTERN")]
    pub patterns: Vec<String>,
}

/// `--provider NAME`: one of the library's registered providers.
fn provider_parser() -> impl clap::builder::TypedValueParser<Value = &'static ProviderInfo> {
    use clap::builder::TypedValueParser as _;
    let names = keys::PROVIDERS
        .iter()
        .map(|p| clap::builder::PossibleValue::new(p.name()).help(p.description()));
    clap::builder::PossibleValuesParser::new(names)
        .map(|name| keys::provider(&name).expect("clap accepts only registered names"))
}

pub fn run(args: Args) -> CommandResult<u8> {
    let repo = Repo::discover(&std::env::current_dir()?)?;
    let root = repo.workdir("git seal init")?.to_owned();
    for pattern in &args.patterns {
        if pattern.is_empty()
            || pattern.chars().any(char::is_whitespace)
            || pattern.starts_with('#')
            || pattern.starts_with('!')
        {
            return Err(CommandError::usage(format!(
                "pattern {pattern:?} cannot be written to .gitattributes (no whitespace, no leading `#` or `!`)"
            )));
        }
    }
    let provider = match args.provider {
        Some(p) => p,
        None => keys::provider_or_default(repo.config_get(PROVIDER_KEY).as_deref())?,
    };

    let mut keks = record::load_all(&root)?;
    match keks
        .iter()
        .filter(|k| k.status == Status::Active)
        .max_by_key(|k| k.version)
    {
        Some(active) => adopt(active, provider)?,
        None => {
            let version = keks.iter().map(|k| k.version).max().unwrap_or(0) + 1;
            let record = create(provider, version)?;
            record::store(&root, &record)?;
            keks.push(record);
        }
    }

    let mut policy = workspace::load_policy(&root, &keks)?;
    let mut policy_changed = !root.join(policy::PATH).exists();
    for pattern in &args.patterns {
        policy_changed |= policy.add_sealed(pattern)?;
    }
    if policy_changed {
        super::io::write_file_atomic(&root.join(policy::PATH), policy.to_text().as_bytes())?;
        println!(
            "git-seal: wrote {} (sealed: {})",
            policy::PATH,
            policy.file.sealed.join(", ")
        );
    }

    let attributes = root.join(".gitattributes");
    let existing = read_optional(&attributes)?;
    // Every required-sealed glob also gets the filter, so policy and
    // .gitattributes agree.
    if let Some(text) = drivers::gitattributes_with(&existing, &policy.file.sealed) {
        super::io::write_file_atomic(&attributes, text.as_bytes())?;
        println!("git-seal: updated .gitattributes");
    }

    repo.config_set(PROVIDER_KEY, provider.name())?;
    let fixed = drivers::configure_drivers(&repo)?;
    if !fixed.is_empty() {
        println!("git-seal: configured {}", fixed.join(", "));
    }
    super::hooks::install(&repo, false)?;
    // The chain is a record, not a precondition: set-up stands without it.
    if let Err(e) = start_audit_chain(&repo, &keks) {
        eprintln!(
            "git-seal: warning: the audit chain was not started: {}; run `git seal init` again once that is fixed",
            e.error
        );
    }
    // A fresh clone checked its sealed files out before the filter existed:
    // open them now if the key is here (never discarding local changes).
    if let Ok(project) = git_seal::workspace::Workspace::open(&root) {
        if project.keys().has(&project.active()?.kid) {
            if let Err(e) = super::unlock::unlock_quietly(&project) {
                eprintln!("git-seal: warning: {e}");
            }
        }
    }
    if policy_changed || existing.is_empty() {
        println!("next: git add .gitattributes .seal && git commit -m 'Set up git-seal'");
    }
    Ok(0)
}

/// Configure each remote to fetch the audit chain, take a remote's chain
/// when there is none here (a fresh clone), else start one with a signed
/// `init` entry naming the KEKs.
fn start_audit_chain(repo: &Repo, keks: &[KekRecord]) -> CommandResult {
    let remotes = repo.remotes()?;
    for remote in &remotes {
        let key = format!("remote.{remote}.fetch");
        if repo.config_set_multivar_once(&key, &audit::fetch_refspec(remote))? {
            println!("git-seal: {remote} now fetches the audit chain (refs/seal/*)");
        }
    }
    if audit::chain::tip(repo).is_some() {
        return Ok(());
    }
    for remote in &remotes {
        if let Err(e) = super::audit::fetch_chain(remote) {
            eprintln!("git-seal: warning: cannot fetch {remote}'s audit chain: {e}");
        }
    }
    for note in audit::take_fetched(repo)? {
        println!("git-seal: audit: {note}");
    }
    if audit::chain::tip(repo).is_some() {
        return Ok(());
    }
    let signer = audit::Signer::load_or_create()?;
    let kids: Vec<String> = keks.iter().map(|k| k.kid.to_string()).collect();
    if let Some(id) = audit::record_init(repo, &kids, &signer)? {
        println!(
            "git-seal: started the audit chain {} at {id}, signed by {}",
            audit::REF,
            signer.fingerprint()
        );
    }
    Ok(())
}

fn read_optional(path: &Path) -> CommandResult<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(CommandError::user(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// The repository already has an active KEK: use it, never replace it.
fn adopt(active: &KekRecord, provider: &ProviderInfo) -> CommandResult {
    if active.custody != provider.custody() {
        return Err(CommandError::user(format!(
            "the active KEK {} has {} custody, which the {} provider cannot serve",
            active.kid,
            active.custody,
            provider.name()
        )));
    }
    let keys = provider.open()?;
    if keys.has(&active.kid) {
        println!(
            "git-seal: using KEK {} ({} provider)",
            active.kid,
            provider.name()
        );
    } else {
        let place = match provider.name() {
            "file" => format!(
                "the key file {}",
                FileKeys::open_default()?.path_of(&active.kid).display()
            ),
            "env" => "GIT_SEAL_KEK".to_owned(),
            other => format!("the {other} provider"),
        };
        eprintln!(
            "git-seal: warning: the private key of KEK {} is not available here; sealed files stay locked until it is in {place} (then run `git seal unlock`)",
            active.kid
        );
    }
    Ok(())
}

/// No KEK yet: make one (file) or take the one in GIT_SEAL_KEK (env).
fn create(provider: &ProviderInfo, version: u32) -> CommandResult<KekRecord> {
    match provider.name() {
        "file" => {
            let secret = KekSecret::generate();
            let path = FileKeys::open_default()?.store(&secret)?;
            let record = KekRecord::new_x25519(&secret.public(), version);
            println!(
                "git-seal: created KEK {} (private key: {})",
                record.kid,
                path.display()
            );
            println!("git-seal: back that file up; without it nobody can open this repository's sealed files");
            Ok(record)
        }
        "env" => {
            let keys = EnvKeys::from_env()?;
            let (kid, secret) = keys.secrets().next().ok_or_else(|| {
                CommandError::user("the env provider needs a KEK in GIT_SEAL_KEK, and it is empty")
                    .with_hint(
                        "make one with `openssl rand -hex 32` and keep it in your secret store",
                    )
            })?;
            let record = KekRecord::new_x25519(&secret.public(), version);
            println!("git-seal: adopted KEK {kid} from GIT_SEAL_KEK");
            Ok(record)
        }
        other => Err(CommandError::user(format!(
            "the {other} provider cannot create a KEK"
        ))),
    }
}
