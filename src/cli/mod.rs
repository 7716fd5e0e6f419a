//! Command-line interface: one file per subcommand, each an `Args` struct
//! whose doc comments are the help text and one `run` function.

use clap::{Parser, Subcommand};

/// `println!` that never panics: a line through [`to_stdout`], so that a
/// closed pipe (`| head`) ends the output but not the command, whose exit
/// code still says what it found.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let text = format!($($arg)*);
        $crate::cli::to_stdout(|out| writeln!(out, "{text}"))?
    }};
}

/// `print!`, likewise.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let text = format!($($arg)*);
        $crate::cli::to_stdout(|out| out.write_all(text.as_bytes()))?
    }};
}

use error::CommandResult;

/// Whether standard output's reader has gone (see [`to_stdout`]).
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Write to standard output with `write`. Once its reader has gone (a
/// closed pipe) nothing more is written, and that is not an error: the
/// command goes on to its end and exit code (a review with findings still
/// exits 1 under `| head`). Other write errors are returned.
pub(crate) fn to_stdout(
    write: impl FnOnce(&mut std::io::StdoutLock<'static>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::sync::atomic::Ordering;
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    match write(&mut std::io::stdout().lock()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            Ok(())
        }
        done => done,
    }
}

pub(crate) mod audit;
pub(crate) mod check;
pub(crate) mod completions;
pub(crate) mod decrypt;
pub(crate) mod doctor;
pub(crate) mod encrypt;
pub(crate) mod error;
pub(crate) mod filter_process;
pub(crate) mod help;

pub(crate) mod hook;
pub(crate) mod hooks;
pub(crate) mod init;
pub(crate) mod kek;
pub(crate) mod lock;
pub(crate) mod manual;
pub(crate) mod merge;
pub(crate) mod migrate;
pub(crate) mod recipients;
pub(crate) mod report;
pub(crate) mod review;
pub(crate) mod rotate;
pub(crate) mod status;
pub(crate) mod stdio;
pub(crate) mod textconv;
pub(crate) mod unlock;
pub(crate) mod usage;

/// Customer-managed-key encryption for Git repositories.
///
/// Files that the repository's policy marks as sensitive are stored in Git
/// only as sealed JSON envelopes, encrypted under a key-encryption key (KEK)
/// whose private half you hold. A Git filter seals on `git add` and unseals on
/// checkout, so you keep using Git as usual.
///
/// Start with `git seal init 'secrets/**'` in a repository.
#[derive(Parser, Debug)]
#[command(
    name = "git-seal",
    bin_name = "git seal",
    version,
    max_term_width = 100,
    // `help` is a command of its own, so that `git seal help --help` works.
    disable_help_subcommand = true
)]
pub(crate) struct Cli {
    /// Show no progress counters (shown only on a terminal, on standard
    /// error, for work that takes a while: migrate, lock, unlock, rotate,
    /// recipients, check, audit verify).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    Init(init::Args),
    Status(status::Args),
    Encrypt(encrypt::Args),
    Decrypt(decrypt::Args),
    Check(check::Args),
    Review(review::Args),
    Lock(lock::Args),
    Hooks(hooks::Args),
    Migrate(migrate::Args),
    Doctor(doctor::Args),
    #[command(hide = true)]
    Hook(hook::Args),
    Unlock(unlock::Args),
    Rotate(rotate::Args),
    Kek(kek::Args),
    Recipients(recipients::Args),
    Audit(audit::Args),
    Manual(manual::Args),
    Completions(completions::Args),
    Help(help::Args),
    #[command(name = "filter-process", hide = true)]
    FilterProcess(filter_process::ProcessArgs),
    #[command(hide = true)]
    Clean(filter_process::CleanArgs),
    #[command(hide = true)]
    Smudge(filter_process::SmudgeArgs),
    #[command(hide = true)]
    Textconv(textconv::Args),
    #[command(hide = true)]
    Merge(merge::Args),
}

/// Run a parsed command; the `u8` is the exit code on success paths that
/// still report findings.
pub(crate) fn run(cli: Cli) -> CommandResult<u8> {
    if cli.quiet {
        git_seal::progress::set_quiet();
    }
    match cli.command {
        Command::Init(args) => init::run(args),
        Command::Status(args) => status::run(args),
        Command::Encrypt(args) => encrypt::run(args),
        Command::Decrypt(args) => decrypt::run(args),
        Command::Check(args) => check::run(args),
        Command::Review(args) => review::run(args),
        Command::Lock(args) => lock::run(args),
        Command::Hooks(args) => hooks::run(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Hook(args) => hook::run(args),
        Command::Unlock(args) => unlock::run(args),
        Command::Rotate(args) => rotate::run(args),
        Command::Kek(args) => kek::run(args),
        Command::Recipients(args) => recipients::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Manual(args) => manual::run(args),
        Command::Completions(args) => completions::run(args),
        Command::Help(args) => help::run(args),
        Command::FilterProcess(args) => filter_process::run_process(args),
        Command::Clean(args) => filter_process::run_clean(args),
        Command::Smudge(args) => filter_process::run_smudge(args),
        Command::Textconv(args) => textconv::run(args),
        Command::Merge(args) => merge::run(args),
    }
}
