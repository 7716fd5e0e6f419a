//! What `git seal init` configures in a clone: the filter, diff and merge
//! drivers in `.git/config` and the managed lines of `.gitattributes`.
//! (The hooks are `hooks`' business.)
//! `doctor` and `status` read the same tables, so they always agree.

use crate::repo::{Repo, RepoError};

/// Driver configuration, exactly as `init` writes it. `git-seal` must be on
/// PATH (as `cargo install` arranges). `--` comes before the paths Git
/// appends or puts in, so that a file named `-x.env` is not an option. `diff.seal.cachetextconv` is left
/// unset on purpose: Git would cache plaintext in `refs/notes/textconv`.
pub const DRIVER_CONFIG: &[(&str, &str)] = &[
    ("filter.seal.process", "git-seal filter-process"),
    ("filter.seal.clean", "git-seal clean -- %f"),
    ("filter.seal.smudge", "git-seal smudge -- %f"),
    ("filter.seal.required", "true"),
    ("diff.seal.textconv", "git-seal textconv --"),
    // Binary to Git's plumbing diff, so `git add -p`, `reset -p` and
    // `stash -p` cannot splice the JSON lines of two envelopes (the result
    // would open for nobody); `git diff` and `log -p` still show textconv.
    ("diff.seal.binary", "true"),
    (
        "merge.seal.name",
        "git-seal: three-way merge of plaintext, re-sealed",
    ),
    (
        "merge.seal.driver",
        "git-seal merge -- %O %A %B %L %P %S %X %Y",
    ),
];

/// Attributes that every sealed pattern gets in `.gitattributes`.
pub const ATTRIBUTES: &str = "filter=seal diff=seal merge=seal";

/// Lines that keep git-seal's own files out of any sealed pattern. They stay
/// last in `.gitattributes`, because later lines win.
pub const GUARD_LINES: &[&str] = &[
    "/.gitattributes !filter !diff !merge",
    "/.seal/** !filter !diff !merge",
];

/// Set every driver key that is missing or different; return the ones fixed.
pub(crate) fn configure_drivers(repo: &Repo) -> Result<Vec<&'static str>, RepoError> {
    let mut fixed = Vec::new();
    for (key, value) in DRIVER_CONFIG {
        if repo.config_get(key).as_deref() != Some(value) {
            repo.config_set(key, value)?;
            fixed.push(*key);
        }
    }
    Ok(fixed)
}

/// The temporary files git-seal writes beside a file and renames into
/// place; one left by a killed run is never something to commit.
pub const TEMP_PATTERN: &str = ".git-seal-*";

/// Make Git ignore [`TEMP_PATTERN`] in this clone (`info/exclude`);
/// whether it changed anything.
pub fn exclude_temp_files(repo: &Repo) -> Result<bool, std::io::Error> {
    let info = repo.common_dir().join("info");
    let path = info.join("exclude");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    if text.lines().any(|l| l.trim() == TEMP_PATTERN) {
        return Ok(false);
    }
    std::fs::create_dir_all(&info)?;
    let mut text = text;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(TEMP_PATTERN);
    text.push('\n');
    std::fs::write(&path, text)?;
    Ok(true)
}

/// Driver keys that are missing or differ from what `init` writes.
pub fn missing_drivers(repo: &Repo) -> Vec<&'static str> {
    DRIVER_CONFIG
        .iter()
        .filter(|(key, value)| repo.config_get(key).as_deref() != Some(value))
        .map(|(key, _)| *key)
        .collect()
}

/// `.gitattributes` text with a line for each pattern, guard lines last.
/// Returns `None` when nothing would change.
pub(crate) fn gitattributes_with(existing: &str, patterns: &[String]) -> Option<String> {
    let mut lines: Vec<String> = existing
        .lines()
        .filter(|l| !GUARD_LINES.contains(&l.trim()))
        .map(str::to_owned)
        .collect();
    for pattern in patterns {
        let present = lines.iter().any(|l| {
            let mut words = l.split_whitespace();
            words.next() == Some(pattern.as_str()) && words.any(|w| w == "filter=seal")
        });
        if !present {
            lines.push(format!("{pattern} {ATTRIBUTES}"));
        }
    }
    lines.extend(GUARD_LINES.iter().map(|l| l.to_string()));
    let mut text = lines.join("\n");
    text.push('\n');
    (text != existing).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitattributes_is_idempotent_and_keeps_guards_last() {
        let first = gitattributes_with("*.png binary\n", &["secrets/**".into()]).unwrap();
        assert_eq!(
            first,
            "*.png binary\nsecrets/** filter=seal diff=seal merge=seal\n/.gitattributes !filter !diff !merge\n/.seal/** !filter !diff !merge\n"
        );
        assert_eq!(gitattributes_with(&first, &["secrets/**".into()]), None);
        let second = gitattributes_with(&first, &["*.env".into()]).unwrap();
        assert!(second.ends_with("*.env filter=seal diff=seal merge=seal\n/.gitattributes !filter !diff !merge\n/.seal/** !filter !diff !merge\n"));
    }
}
