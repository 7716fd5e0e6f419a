//! `git seal manual`: git-seal's man pages, rendered from the same clap
//! definitions as `-h` and `git seal help`, one page per command as Git has
//! them (git-seal(1), git-seal-init(1), git-seal-kek-list(1), …).
//!
//! Git answers `git seal --help` and `git help seal` with `man git-seal`,
//! and man-db looks in `DIR/../share/man` for every DIR on PATH. So pages
//! in `share/man/man1` beside the executable's directory
//! (`~/.cargo/share/man/man1` after `cargo install`) are found with no step
//! of the user's own: `git seal init` keeps them current there
//! ([`refresh_beside_executable`]), and packagers install them where they
//! like with `--install --dir`. This module does not compress pages; a
//! directory that holds a compressed `git-seal.1` belongs to a package
//! manager and is left alone.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::CommandFactory as _;

use super::error::{CommandError, CommandResult};
use super::Cli;

/// Show git-seal's manual page, or install every page where `man` finds it.
///
/// Without --install, writes the git-seal(1) page (roff) to standard output:
/// `git seal manual | man -l -` shows it. With --install, writes git-seal.1
/// and one page per command (git-seal-init.1, …) into the directory; pages
/// already current are left alone and pages of commands that no longer exist
/// are removed; a directory whose compressed git-seal.1 came with a package
/// is left to the package. `git seal init` does the same beside the
/// executable, so that `git seal --help` and `git help seal` show the manual.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Write every page into the manual directory (see --dir).
    #[arg(long)]
    pub install: bool,
    /// The directory the pages go in, e.g. /usr/local/share/man/man1
    /// [default: share/man/man1 beside the directory that holds git-seal,
    /// where `man` finds it through PATH].
    #[arg(long, value_name = "DIR", requires = "install")]
    pub dir: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> CommandResult<u8> {
    if !args.install {
        let (_, top) = pages().into_iter().next().expect("git-seal(1) comes first");
        std::io::stdout().lock().write_all(&top)?;
        return Ok(0);
    }
    let dir = match args.dir {
        Some(dir) => dir,
        None => dir_beside_executable()?,
    };
    if is_packaged(&dir) {
        outln!(
            "git-seal: the manual in {} comes with a package, which keeps it current",
            dir.display()
        );
        return Ok(0);
    }
    let written = install(&dir).map_err(|e| CommandError::user(format!("{e:#}")))?;
    if written == 0 {
        outln!("git-seal: the manual in {} is current", dir.display());
    } else {
        outln!(
            "git-seal: wrote {written} manual page(s) in {}",
            dir.display()
        );
    }
    Ok(0)
}

/// After `git seal init`: bring the pages beside the executable up to date,
/// so that `git seal --help` finds them. This never fails the command: a
/// directory that cannot be written is said in one line.
pub(crate) fn refresh_beside_executable() {
    let Ok(dir) = dir_beside_executable() else {
        return;
    };
    if is_packaged(&dir) {
        return;
    }
    if let Err(e) = install(&dir) {
        eprintln!(
            "git-seal: note: cannot install the manual ({e:#}), so `git seal --help` \
             will not show it; `git seal help` shows the same text, and \
             `git seal manual --install --dir DIR` installs it elsewhere"
        );
    }
}

/// `share/man/man1` beside the directory that holds the running executable.
fn dir_beside_executable() -> CommandResult<PathBuf> {
    let exe = std::env::current_exe()?;
    let prefix = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| CommandError::user(format!("{} has no parent", exe.display())))?;
    Ok(prefix.join("share/man/man1"))
}

/// Does a package manager own the pages here (a compressed git-seal.1)?
fn is_packaged(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("git-seal.1."))
}

/// Write the pages that are missing or differ into `dir` (created if need
/// be), each atomically, and remove `git-seal-*.1` pages of commands that no
/// longer exist; how many pages were written.
fn install(dir: &Path) -> anyhow::Result<usize> {
    use anyhow::Context as _;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let pages = pages();
    let mut written = 0;
    for (name, roff) in &pages {
        let path = dir.join(name);
        if std::fs::read(&path).is_ok_and(|old| old == *roff) {
            continue;
        }
        git_seal::atomic_file::write_shared(&path, roff)?;
        written += 1;
    }
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with("git-seal-") && name.ends_with(".1");
        if ours && !pages.iter().any(|(page, _)| *page == name) {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove {}", entry.path().display()))?;
        }
    }
    Ok(written)
}

/// Every page as (file name, roff): git-seal.1 first, then each command
/// that `git seal -h` lists, and theirs, depth first.
fn pages() -> Vec<(String, Vec<u8>)> {
    fn add(cmd: &clap::Command, pages: &mut Vec<(String, Vec<u8>)>) {
        let man = clap_mangen::Man::new(cmd.clone());
        let mut roff = Vec::new();
        man.render(&mut roff).expect("rendering into memory");
        let roff = String::from_utf8(roff).expect("clap's help is UTF-8");
        let mut page = String::with_capacity(roff.len());
        for line in roff.lines() {
            match line.strip_prefix(".TH ") {
                Some(_) => page.push_str(&title_line(cmd)),
                None => page.push_str(line),
            }
            page.push('\n');
        }
        pages.push((man.get_filename(), page.into_bytes()));
        // The pages are the help: `help` has no page of its own.
        for sub in cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        {
            add(sub, pages);
        }
    }
    let mut cli = Cli::command();
    cli.build();
    let mut pages = Vec::new();
    add(&cli, &mut pages);
    pages
}

/// The page's `.TH` line: name, section, no date, the version, the
/// manual's name. Written here because clap_mangen leaves an empty date out
/// instead of quoting it, which moves the version into the date's place.
fn title_line(cmd: &clap::Command) -> String {
    let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
    let version = env!("CARGO_PKG_VERSION");
    format!(".TH {name} 1 \"\" \"git-seal {version}\" \"git-seal Manual\"")
}
