//! `git seal lock`: replace work-tree plaintext by envelopes.

use super::error::{CommandError, CommandResult};
use git_seal::envelope;
use git_seal::filter::lock_marker;
use git_seal::workspace::Workspace;

/// Replace work-tree plaintext of sealed files by their envelopes.
///
/// Keeps nothing decrypted on disk, and keeps the files sealed on later
/// checkouts until `git seal unlock`.
///
/// Refuses when a sealed file has changes not yet staged (they would be
/// lost) unless --force.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Discard unstaged changes to sealed files.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: Args) -> CommandResult<u8> {
    let project = Workspace::open(&std::env::current_dir()?)?;
    let sealed = project.sealed_index_paths()?;
    let paths: Vec<String> = sealed.iter().map(|(p, _)| p.clone()).collect();
    if !args.force {
        let changed = unstaged_changes(&project, &paths)?;
        if !changed.is_empty() {
            return Err(CommandError::user(format!(
                "sealed files have unstaged changes that locking would discard: {}",
                changed.join(", ")
            ))
            .with_hint("stage or commit them (`git add`), stash them, or run `git seal lock --force` to discard them"));
        }
    }
    // Mark first: a checkout racing with us must not unseal again.
    std::fs::write(lock_marker(&project.repo), b"locked by `git seal lock`\n")?;
    let mut locked = Vec::new();
    for (path, id) in &sealed {
        let file = project.root.join(path);
        let Ok(current) = std::fs::read(&file) else {
            continue;
        };
        if envelope::is_envelope(&current) {
            continue;
        }
        let text = project.repo.blob(*id)?;
        if !envelope::is_envelope(&text) {
            eprintln!("git-seal: warning: {path} is stored in plaintext in the index; `git seal check` will report it");
            continue;
        }
        // write_file_atomic keeps the file's mode.
        super::io::write_file_atomic(&file, &text)?;
        locked.push(path.clone());
    }
    // The index still records the plaintext's size, and Git calls an entry
    // whose size changed modified without looking at its content: re-add the
    // envelopes (they clean to the same blobs) so the index matches again.
    if !locked.is_empty() {
        let root = project.root.to_string_lossy().into_owned();
        super::git::run(
            &[
                "-C",
                &root,
                "add",
                "--sparse",
                "--pathspec-from-file=-",
                "--pathspec-file-nul",
            ],
            Some(&super::git::nul_list(&locked)),
            &[0],
        )?;
    }
    println!(
        "git-seal: locked {} file(s); this work tree stays locked until `git seal unlock`",
        locked.len()
    );
    Ok(0)
}

/// Sealed paths whose work-tree content differs from the index.
pub fn unstaged_changes(project: &Workspace, paths: &[String]) -> CommandResult<Vec<String>> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let _ = project;
    let mut args = vec![
        "diff",
        "--name-only",
        "-z",
        "--no-ext-diff",
        "--no-textconv",
        "--",
    ];
    args.extend(paths.iter().map(String::as_str));
    let out = super::git::run(&args, None, &[0])?;
    Ok(super::git::parse_nul_list(&out.stdout))
}
