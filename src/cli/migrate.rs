//! `git seal migrate`: seal tracked plaintext that the policy now covers.

use super::error::{CommandError, CommandResult};
use git_seal::audit;
use git_seal::drivers;
use git_seal::envelope;
use git_seal::keys;
use git_seal::policy;
use git_seal::workspace::Workspace;

/// Seal tracked plaintext that the policy now covers, and stage it.
///
/// Finds the tracked files that the policy (or `.gitattributes`) says must
/// be sealed but that the index holds as plaintext, and stages their
/// envelopes; you commit them.
///
/// Also adds any missing `.gitattributes` lines for the policy's globs, so
/// the filter keeps those files sealed from now on. Their plaintext stays
/// in the work tree, and in earlier commits: rotate what it protected.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> CommandResult<u8> {
    let project = Workspace::open(&std::env::current_dir()?)?;
    let missing = drivers::missing_drivers(&project.repo);
    if !missing.is_empty() {
        return Err(CommandError::user(format!(
            "the filter is not configured in this clone ({} missing), so Git would store plaintext again",
            missing.join(", ")
        ))
        .with_hint("run `git seal init`, then `git seal migrate` again"));
    }
    let root = project.root.to_string_lossy().into_owned();
    let attributes = project.root.join(".gitattributes");
    let existing = std::fs::read_to_string(&attributes).unwrap_or_default();
    if let Some(text) = drivers::gitattributes_with(&existing, &project.policy.file.sealed) {
        super::io::write_file_atomic(&attributes, text.as_bytes())?;
        super::git::run(&["-C", &root, "add", "--", ".gitattributes"], None, &[0])?;
        println!("git-seal: added the policy's globs to .gitattributes (staged)");
    }

    let mut sealed = Vec::new();
    for (path, id) in project.sealed_index_paths()? {
        if policy::is_exempt(&path) {
            continue;
        }
        let plaintext = project.repo.blob(id)?;
        if envelope::is_envelope(&plaintext) {
            continue;
        }
        let targets = project.targets_for(Some(&path))?;
        let text = keys::seal_bytes(plaintext, project.policy.aad_for(&path), &targets)
            .map_err(|e| CommandError::user(format!("cannot seal {path}: {e}")))?;
        sealed.push((path, project.repo.write_blob(&text)?));
    }
    if sealed.is_empty() {
        println!(
            "git-seal: nothing to migrate: every file that must be sealed is sealed in the index"
        );
        return Ok(0);
    }
    // Keep each entry's mode: read it from the index.
    let paths: Vec<String> = sealed.iter().map(|(p, _)| p.clone()).collect();
    let mut args = vec!["-C", &root, "ls-files", "-s", "-z", "--"];
    args.extend(paths.iter().map(String::as_str));
    let listed = super::git::run(&args, None, &[0])?;
    let mut mode_of = std::collections::HashMap::new();
    for record in super::git::parse_nul_list(&listed.stdout) {
        if let Some((meta, path)) = record.split_once('\t') {
            if let Some(mode) = meta.split_whitespace().next() {
                mode_of.insert(path.to_owned(), mode.to_owned());
            }
        }
    }
    let mut info = Vec::new();
    for (path, id) in &sealed {
        let mode = mode_of.get(path).map_or("100644", String::as_str);
        info.extend_from_slice(format!("{mode} {id}\t{path}").as_bytes());
        info.push(0);
    }
    super::git::run(
        &["-C", &root, "update-index", "-z", "--index-info"],
        Some(&info),
        &[0],
    )?;
    println!(
        "git-seal: sealed and staged {} file(s): {}",
        paths.len(),
        paths.join(", ")
    );
    println!("next: git commit -m 'Seal files the policy covers' (their plaintext stays in earlier commits: rotate what it protected)");
    if let Err(e) = audit::on_migrate(&project, &paths) {
        eprintln!("git-seal: warning: migrate: the audit entry was not written: {e}");
    }
    Ok(0)
}
