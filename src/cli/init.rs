//! `git seal init`: set up (or repair) a repository or a fresh clone.

use git_seal::init::{self, InitError, KekSetup};
use git_seal::keys::{self, ProviderInfo};
use git_seal::policy;
use git_seal::repo::Repo;

use super::error::{CommandError, CommandResult};

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
pub(crate) struct Args {
    /// Where the KEK's private half lives: `file` (a key file in your user
    /// data directory; the default), `env` (GIT_SEAL_KEK, for CI), or
    /// `pkcs11` (a key inside an HSM; GIT_SEAL_PKCS11_MODULE, _TOKEN, _PIN).
    /// A clone keeps the provider it was set up with: see --force.
    #[arg(long, value_parser = provider_parser())]
    pub provider: Option<&'static ProviderInfo>,
    /// Set this clone up for another --provider than the one it has (its
    /// KEK must be usable through the new one). Moving the repository to a
    /// new KEK elsewhere is `git seal rotate --provider P` instead.
    #[arg(long, requires = "provider")]
    pub force: bool,
    /// The AWS KMS key that guards a new KEK (`--provider aws-kms`): an
    /// ARN, or alias/NAME. Credentials and region come from the AWS
    /// environment (AWS_PROFILE, AWS_ACCESS_KEY_ID…, AWS_REGION).
    #[arg(long, value_name = "ARN")]
    pub kms_key: Option<String>,
    /// Paths to seal, as `.gitattributes` patterns (e.g. 'secrets/**', '*.env').
    #[arg(value_name = "PATTERN")]
    pub patterns: Vec<String>,
}

/// `--provider NAME`: one of the library's registered providers.
pub(crate) fn provider_parser(
) -> impl clap::builder::TypedValueParser<Value = &'static ProviderInfo> {
    use clap::builder::TypedValueParser as _;
    let names = keys::PROVIDERS
        .iter()
        .map(|p| clap::builder::PossibleValue::new(p.name()).help(p.description()));
    clap::builder::PossibleValuesParser::new(names)
        .map(|name| keys::provider(&name).expect("clap accepts only registered names"))
}

pub(crate) fn run(args: Args) -> CommandResult<u8> {
    let repo = Repo::from_env()?;
    let options = init::Options {
        provider: args.provider,
        force: args.force,
        kms_key: args.kms_key.as_deref(),
    };
    let done = init::init(&repo, &options, &args.patterns).map_err(|e| match e {
        e @ InitError::BadPattern(_) => CommandError::usage(e),
        e @ InitError::EmptyEnv => CommandError::from(e)
            .with_hint("make one with `openssl rand -hex 32` and keep it in your secret store"),
        e => e.into(),
    })?;
    if super::report::git_seal_on_path().is_none() {
        eprintln!("git-seal: warning: git-seal is not on PATH, so Git cannot run the filter and hooks just configured; add the directory it is in to PATH (`git seal doctor` says which)");
    }
    for (given, written) in &done.normalized {
        outln!("git-seal: pattern {given:?} means everything under it: writing {written:?}");
    }
    match &done.kek {
        KekSetup::Created { kid, path } => {
            outln!("git-seal: created KEK {kid} (private key: {})", path.display());
            outln!("git-seal: back that file up; without it nobody can open this repository's sealed files");
        }
        KekSetup::CreatedIn { kid, place } => {
            outln!("git-seal: created KEK {kid} inside {place}; it cannot leave the token");
            outln!("git-seal: backing the token up is up to you (the HSM's own backup); without it nobody can open this repository's sealed files");
        }
        KekSetup::Guarded { kid, key } => {
            outln!("git-seal: created KEK {kid}, guarded by KMS key {key} (its record holds only the KMS ciphertext of its private half)");
            outln!("git-seal: whoever may call kms:Decrypt on that key with the context git-seal:kid={kid} can open this repository's sealed files");
        }
        KekSetup::AdoptedFromEnv { kid } => outln!("git-seal: adopted KEK {kid} from GIT_SEAL_KEK"),
        KekSetup::Using { kid } => outln!(
            "git-seal: using KEK {kid} ({} provider)",
            done.provider.name()
        ),
        KekSetup::Unavailable { kid, place } => eprintln!(
            "git-seal: warning: the private key of KEK {kid} is not available here; sealed files stay locked until it is in {place} (then run `git seal unlock`)"
        ),
    }
    if let Some(sealed) = &done.policy_written {
        outln!(
            "git-seal: wrote {} (sealed: {})",
            policy::PATH,
            sealed.join(", ")
        );
    }
    if done.attributes_updated {
        outln!("git-seal: updated .gitattributes");
    }
    if !done.drivers_fixed.is_empty() {
        outln!("git-seal: configured {}", done.drivers_fixed.join(", "));
    }
    super::report::hook_changes(&done.hooks, false)?;
    match &done.chain {
        Ok(chain) => {
            for remote in &chain.fetching {
                outln!("git-seal: {remote} now fetches the audit chain (refs/seal/*)");
            }
            for (remote, why) in &chain.unfetched {
                eprintln!("git-seal: warning: cannot fetch {remote}'s audit chain: {why}");
            }
            for note in &chain.notes {
                outln!("git-seal: audit: {note}");
            }
            if let Some((id, signer)) = &chain.started {
                outln!(
                    "git-seal: started the audit chain {} at {id}, signed by {signer}",
                    git_seal::audit::REF
                );
            }
        }
        Err(e) => eprintln!(
            "git-seal: warning: the audit chain was not started: {e}; run `git seal init` again once that is fixed"
        ),
    }
    if let Err(e) = &done.unlocked {
        eprintln!("git-seal: warning: {e}");
    }
    for pattern in &done.unmatched {
        eprintln!("git-seal: warning: pattern {pattern:?} matches no tracked or new file yet; check its spelling (patterns are relative to the top of the work tree, as in .gitattributes)");
    }
    if done.commit_suggested {
        outln!("next: git add .gitattributes .seal && git commit -m 'Set up git-seal'");
    }
    Ok(0)
}
