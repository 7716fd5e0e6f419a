//! `git seal merge`: Git's merge driver for sealed files
//! (`merge.seal.driver = git-seal merge -- %O %A %B %L %P %S %X %Y`).

use std::ffi::OsString;
use std::path::PathBuf;

use git_seal::merge::{self, MergeError};
use git_seal::workspace::Workspace;

use super::error::{CommandError, CommandResult};

/// Three-way merge of the plaintexts of a sealed file, re-sealed. Plumbing.
///
/// Exits 0 when the merge is clean and 1 when it has conflicts; either way
/// %A holds an envelope of the result (conflict markers included), which Git
/// checks out as plaintext.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Ancestor version (%O).
    pub base: PathBuf,
    /// Current version (%A); the result is written here.
    pub ours: PathBuf,
    /// Other branch's version (%B).
    pub theirs: PathBuf,
    /// Conflict marker size (%L).
    pub marker_size: u32,
    /// Path being merged (%P; Git's paths are bytes, which need not be
    /// UTF-8).
    pub path: OsString,
    /// Conflict-marker names of the ancestor, current and other versions
    /// (%S %X %Y; a driver configured before they existed passes none).
    #[arg(num_args = 0..=3, value_name = "LABEL")]
    pub labels: Vec<OsString>,
}

pub(crate) fn run(args: Args) -> CommandResult<u8> {
    let ws = Workspace::here()?;
    let sides = merge::Sides {
        base: super::stdio::read_file(&args.base)?,
        ours: super::stdio::read_file(&args.ours)?,
        theirs: super::stdio::read_file(&args.theirs)?,
    };
    let text = |s: &OsString| s.to_string_lossy().into_owned();
    let mut labels = merge::Labels::default();
    if let [base, ours, theirs] = &args.labels[..] {
        labels = merge::Labels {
            base: text(base),
            ours: text(ours),
            theirs: text(theirs),
        };
    }
    // The path as text, as the filter names it (U+FFFD for bytes that are
    // not UTF-8), for the envelope's aad.
    let path = text(&args.path);
    let merged = merge::merge(&ws, &path, sides, args.marker_size, &labels).map_err(|e| match e {
        e @ MergeError::Open { .. } => CommandError::from(e).with_hint("merging sealed files needs the KEK; install it or resolve the conflict on a machine that has it"),
        e => e.into(),
    })?;
    if let Some(why) = &merged.unmergeable {
        eprintln!("git-seal: {path}: {why}; keeping our version");
    }
    git_seal::atomic_file::write_shared(&args.ours, &merged.envelope)?;
    Ok(u8::from(merged.conflicts))
}
