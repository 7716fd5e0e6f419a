//! `git seal merge`: Git's merge driver for sealed files
//! (`merge.seal.driver = git-seal merge %O %A %B %L %P`).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

use super::error::{CommandError, CommandResult};
use git_seal::envelope;
use git_seal::keys;
use git_seal::workspace::Workspace;

/// Three-way merge of the plaintexts of a sealed file, re-sealed. Plumbing.
///
/// Exits 0 when the merge is clean and 1 when it has conflicts; either way
/// %A holds an envelope of the result (conflict markers included), which Git
/// checks out as plaintext.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Ancestor version (%O).
    pub base: String,
    /// Current version (%A); the result is written here.
    pub ours: String,
    /// Other branch's version (%B).
    pub theirs: String,
    /// Conflict marker size (%L).
    pub marker_size: u32,
    /// Path being merged (%P).
    pub path: String,
}

pub fn run(args: Args) -> CommandResult<u8> {
    let project = Workspace::open(&std::env::current_dir()?)?;
    let open = |file: &str| -> CommandResult<Vec<u8>> {
        let text = super::io::read_input(file)?;
        if !envelope::is_envelope(&text) {
            return Ok(text);
        }
        keys::open_bytes(&text, project.keys()).map_err(|e| {
            CommandError::user(format!("cannot merge {}: {e}", args.path))
                .with_hint("merging sealed files needs the KEK; install it or resolve the conflict on a machine that has it")
        })
    };
    let (base, ours, theirs) = (open(&args.base)?, open(&args.ours)?, open(&args.theirs)?);

    // `git merge-file` needs files: write them 0600 in a private 0700
    // directory inside the git dir (never the work tree), removed at once.
    let tmp_parent = project.repo.git_dir().join("seal");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&tmp_parent)?;
    let dir = tempfile::Builder::new()
        .prefix("merge-")
        .tempdir_in(&tmp_parent)?;
    let write = |name: &str, bytes: &[u8]| -> CommandResult<String> {
        let path = dir.path().join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(bytes)?;
        Ok(path.to_string_lossy().into_owned())
    };
    let (o, a, b) = (
        write("base", &base)?,
        write("ours", &ours)?,
        write("theirs", &theirs)?,
    );
    let marker = format!("--marker-size={}", args.marker_size);
    let out = super::git::run(
        &[
            "merge-file",
            "-p",
            &marker,
            "-L",
            "ours",
            "-L",
            "base",
            "-L",
            "theirs",
            &a,
            &o,
            &b,
        ],
        None,
        &(0..=127).collect::<Vec<_>>(),
    );
    drop(dir);
    let (merged, conflicts) = match out {
        Ok(out) => (out.stdout, out.status.code().unwrap_or(1) > 0),
        // Binary or otherwise unmergeable: keep ours and report a conflict.
        Err(e) => {
            eprintln!(
                "git-seal: {}: {e:#}; keeping our version",
                args.path,
                e = e.error
            );
            (ours, true)
        }
    };
    let targets = project.targets_for(Some(&args.path))?;
    let sealed = keys::seal_bytes(merged, project.policy.aad_for(&args.path), &targets)
        .map_err(|e| CommandError::user(format!("cannot seal the merge of {}: {e}", args.path)))?;
    super::io::write_file_atomic(std::path::Path::new(&args.ours), &sealed)?;
    Ok(u8::from(conflicts))
}
