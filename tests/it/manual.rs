//! Help where Git users look for it: `git seal --help` and `git help seal`
//! show the manual once the README's quick start has run, usage errors and
//! notes name help that works when typed as printed, and `git seal
//! completions` completes `git-seal` and `git seal`. The binary is copied
//! into `PREFIX/bin` in the test's own tree, as `cargo install` puts it in
//! `~/.cargo/bin`, so that its pages land there too.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{in_ci, stderr, stdout, Env};

/// Install a copy of git-seal as `PREFIX/bin/git-seal` and put it first on
/// PATH, which then holds no other git-seal (nor pages beside one); `man`
/// and Git's pager print straight to the output. Returns PREFIX.
fn install_copy(env: &mut Env, prefix: &str) -> PathBuf {
    let prefix = env.path(prefix);
    let bin = prefix.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_git-seal"), bin.join("git-seal")).unwrap();
    let rest = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(bin)
        .chain(std::env::split_paths(&rest).filter(|dir| !dir.join("git-seal").exists()));
    let path = std::env::join_paths(dirs).unwrap();
    env.set("PATH", path.to_str().unwrap());
    env.set("MANPAGER", "cat");
    env.set("PAGER", "cat");
    prefix
}

/// Is `man` here to test with? Under CI=true it must be.
fn have_man() -> bool {
    crate::harness::have_tool("man", "apt-get install man-db")
}

/// Where `man -w` finds PAGE, if it does.
fn man_finds(env: &Env, dir: &Path, page: &str) -> Option<PathBuf> {
    let out = env.run("man", dir, &["-w", page], None);
    let found = stdout(&out).trim().to_owned();
    (out.status.success() && !found.is_empty()).then(|| PathBuf::from(found))
}

/// Run a command exactly as a message spells it (`git seal help kek list`),
/// with DIR, where it stands, replaced by `dir_arg`.
#[track_caller]
fn follow(env: &Env, dir: &Path, command: &str, dir_arg: &Path) -> String {
    let words: Vec<&str> = command
        .split(' ')
        .map(|w| {
            if w == "DIR" {
                dir_arg.to_str().unwrap()
            } else {
                w
            }
        })
        .collect();
    assert_eq!(
        words[..2],
        ["git", "seal"],
        "not a git-seal command: {command}"
    );
    stdout(&env.ok("git", dir, &words[1..]))
}

#[test]
fn git_seal_help_said_no_manual_entry_after_the_quick_start() {
    let mut env = Env::new();
    let prefix = install_copy(&mut env, "prefix");
    let man1 = prefix.join("share/man/man1");
    let dir = env.repo("r");
    if !have_man() {
        return;
    }
    assert!(
        man_finds(&env, &dir, "git-seal").is_none_or(|p| !p.starts_with(&prefix)),
        "a page before `git seal init`"
    );

    env.ok("git", &dir, &["seal", "init", "secrets/**"]);

    for page in ["git-seal.1", "git-seal-init.1", "git-seal-kek-list.1"] {
        assert!(man1.join(page).is_file(), "{page} is missing in {man1:?}");
    }
    for plumbing in [
        "git-seal-filter-process.1",
        "git-seal-hook.1",
        "git-seal-help.1",
    ] {
        assert!(!man1.join(plumbing).exists(), "{plumbing} has a page");
    }
    for page in ["git-seal", "git-seal-kek-list"] {
        let found = man_finds(&env, &dir, page).unwrap_or_default();
        assert_eq!(
            found.canonicalize().ok(),
            man1.join(format!("{page}.1")).canonicalize().ok(),
            "`man -w {page}` finds {found:?}"
        );
    }
    for args in [&["seal", "--help"][..], &["help", "seal"]] {
        let text = stdout(&env.ok("git", &dir, args));
        assert!(
            text.contains("git-seal - Customer-managed-key encryption")
                && text.contains("SYNOPSIS")
                && text.contains("git-seal-init(1)"),
            "`git {}` did not show the manual:\n{text}",
            args.join(" ")
        );
    }
}

#[test]
fn usage_errors_name_help_that_works_when_typed_as_printed() {
    let env = Env::new();
    let dir = env.tmp.path();
    let cases: [(&[&str], &str); 4] = [
        (&["--bogus"], "git seal help"),
        (&["inti"], "git seal help"),
        (&["kek", "--bogus", "list"], "git seal help kek"),
        (&["kek", "list", "--bogus"], "git seal help kek list"),
    ];
    for (args, hint) in cases {
        let words = [&["seal"][..], args].concat();
        let err = stderr(&env.fails("git", dir, &words, 2));
        assert_eq!(
            err.trim_end().lines().last(),
            Some(&*format!("For more information, try '{hint}'.")),
            "git seal {}:\n{err}",
            args.join(" ")
        );
        assert!(!err.contains("--help"), "{err}");
        let help = follow(&env, dir, hint, dir);
        let commands = hint.strip_prefix("git seal help").unwrap();
        let usage = format!("Usage: git seal{commands} ");
        assert!(help.contains(&usage), "`{hint}`:\n{help}");
    }
    // The short help stays short, and the help command needs no manual.
    let short = stdout(&env.ok("git", dir, &["seal", "-h"]));
    assert!(short.contains("see more with '--help'"), "{short}");
    let long = stdout(&env.ok("git", dir, &["seal", "help", "init"]));
    assert!(
        long.contains("Usage: git seal init") && long.contains("--provider"),
        "{long}"
    );
    // `help` is a command like the others: its own help works, and an
    // unknown command is named.
    let own = stdout(&env.ok("git", dir, &["seal", "help", "--help"]));
    assert!(own.contains("Usage: git seal help"), "{own}");
    let err = stderr(&env.fails("git", dir, &["seal", "help", "inti"], 2));
    assert!(err.contains("no command `git seal inti`"), "{err}");
}

#[test]
fn manual_install_writes_what_is_missing_or_stale_and_removes_what_is_gone() {
    let env = Env::new();
    let tmp = env.tmp.path();
    let man1 = env.path("man/man1");
    let dir = man1.to_str().unwrap();
    let first = env.seal(tmp, &["manual", "--install", "--dir", dir]);
    assert!(first.contains("wrote ") && first.contains(dir), "{first}");
    let again = env.seal(tmp, &["manual", "--install", "--dir", dir]);
    assert!(again.contains("is current"), "{again}");

    std::fs::write(man1.join("git-seal-init.1"), "old\n").unwrap();
    std::fs::write(man1.join("git-seal-gone.1"), "a removed command\n").unwrap();
    std::fs::write(man1.join("git.1"), "not ours\n").unwrap();
    let repaired = env.seal(tmp, &["manual", "--install", "--dir", dir]);
    assert!(repaired.contains("wrote 1 "), "{repaired}");
    assert!(std::fs::read_to_string(man1.join("git-seal-init.1"))
        .unwrap()
        .contains(".TH git-seal-init 1 \"\" \"git-seal "));
    assert!(!man1.join("git-seal-gone.1").exists());
    assert!(man1.join("git.1").exists());

    let page = env.seal(tmp, &["manual"]);
    assert_eq!(
        page,
        std::fs::read_to_string(man1.join("git-seal.1")).unwrap()
    );
    env.fails("git-seal", tmp, &["manual", "--dir", dir], 2);
}

#[test]
fn init_where_the_manual_cannot_go_says_so_once_and_succeeds() {
    let mut env = Env::new();
    let prefix = install_copy(&mut env, "prefix");
    // Not a directory, so nothing can be created below it (even as root).
    std::fs::write(prefix.join("share"), "").unwrap();
    let dir = env.repo("r");
    let err = stderr(&env.ok("git", &dir, &["seal", "init", "secrets/**"]));
    let notes: Vec<&str> = err.lines().filter(|l| l.contains("manual")).collect();
    assert_eq!(notes.len(), 1, "{err}");
    let commands: Vec<&str> = notes[0].split('`').skip(1).step_by(2).collect();
    assert!(commands.len() >= 2, "{}", notes[0]);
    let elsewhere = env.path("elsewhere");
    for command in commands {
        if command.starts_with("git seal") && command != "git seal --help" {
            follow(&env, &dir, command, &elsewhere);
        }
    }
    assert!(elsewhere.join("git-seal.1").is_file());
}

#[test]
fn init_leaves_a_packaged_manual_alone() {
    let mut env = Env::new();
    let prefix = install_copy(&mut env, "usr");
    let man1 = prefix.join("share/man/man1");
    std::fs::create_dir_all(&man1).unwrap();
    std::fs::write(man1.join("git-seal.1.gz"), "from the package\n").unwrap();
    let dir = env.repo("r");
    let out = env.ok("git", &dir, &["seal", "init", "secrets/**"]);
    assert!(!stderr(&out).contains("manual"), "{}", stderr(&out));
    let said = stdout(&env.ok("git", &dir, &["seal", "manual", "--install"]));
    assert!(said.contains("comes with a package"), "{said}");
    let names: Vec<_> = std::fs::read_dir(&man1)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["git-seal.1.gz"]);
}

/// Run a bash script in the test's environment; its stdout.
#[track_caller]
fn bash(env: &Env, script: &str) -> String {
    stdout(&env.ok("bash", env.tmp.path(), &["-c", script]))
}

/// Complete the last of WORDS with the function `complete -p COMMAND` names,
/// as bash does on Tab; the candidates, one line.
const COMPLETE: &str = r#"
complete_words() {
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
    COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
    local spec; spec=$(complete -p "$1")
    local fn=${spec##*-F }; fn=${fn%% *}
    "$fn" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    echo "${COMPREPLY[*]}"
}
"#;

#[test]
fn bash_completes_git_seal_and_git_seal_as_a_git_command() {
    let env = Env::new();
    bash(
        &env,
        "source <(git seal completions bash) && complete -p git-seal && declare -F _git_seal",
    );
    let ours = format!("{COMPLETE}\nsource <(git seal completions bash)\n");
    let top = bash(&env, &format!("{ours}complete_words git-seal ''"));
    for word in [
        "init",
        "status",
        "kek",
        "manual",
        "completions",
        "--version",
    ] {
        assert!(top.split(' ').any(|w| w.trim() == word), "{word}: {top}");
    }
    for plumbing in ["filter-process", "hook", "clean", "smudge", "textconv"] {
        assert!(
            !top.split(' ').any(|w| w.trim() == plumbing),
            "{plumbing}: {top}"
        );
    }
    // Every option that `git seal -h` lists, global ones included.
    let help = env.seal(env.tmp.path(), &["-h"]);
    let options = help.split_whitespace().filter(|w| w.starts_with("--"));
    for option in options.map(|w| w.trim_end_matches(|c: char| !c.is_alphanumeric())) {
        assert!(
            top.split(' ').any(|w| w.trim() == option),
            "{option}: {top}"
        );
    }
    // Below the first command too (a hyphenated binary used to stop there).
    let nested = bash(&env, &format!("{ours}complete_words git-seal kek list -"));
    assert!(nested.contains("--json"), "{nested}");
    let value = bash(
        &env,
        &format!("{ours}complete_words git-seal init --provider ''"),
    );
    assert!(value.contains("pkcs11"), "{value}");

    // `git seal <Tab>` through Git's own completion, which calls _git_seal.
    let git_completion = ["/usr/share/bash-completion/completions/git"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(git_completion) = git_completion else {
        assert!(!in_ci(), "Git's bash completion is missing under CI=true");
        eprintln!("skipping `git seal <Tab>`: Git's bash completion is not installed");
        return;
    };
    let theirs = format!("source {git_completion}\n{ours}");
    let sub = bash(&env, &format!("{theirs}complete_words git seal kek l"));
    assert_eq!(sub.trim(), "list");
    let after_option = bash(
        &env,
        &format!("{theirs}complete_words git -C . seal kek list --j"),
    );
    assert_eq!(after_option.trim(), "--json");
}

#[test]
fn zsh_and_fish_scripts_complete_git_seal() {
    let env = Env::new();
    let zsh = env.seal(env.tmp.path(), &["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef git-seal"), "{zsh}");
    let fish = env.seal(env.tmp.path(), &["completions", "fish"]);
    assert!(fish.contains("complete -c git-seal"), "{fish}");
    for (shell, script) in [("zsh", &zsh), ("fish", &fish)] {
        assert!(
            !script.contains("filter-process"),
            "{shell} offers plumbing"
        );
        // Parsed by the shell itself where it is installed (not required).
        let file = env.path(shell);
        std::fs::write(&file, script).unwrap();
        if let Ok(out) = Command::new(shell).arg("-n").arg(&file).output() {
            assert!(out.status.success(), "{shell} -n: {}", stderr(&out));
        }
    }
}
