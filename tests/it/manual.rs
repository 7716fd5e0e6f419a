//! Help where Git users look for it: usage errors name help that works
//! when typed as printed.

use std::path::Path;

use crate::harness::{stderr, stdout, Env};

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
fn usage_errors_name_help_that_works_when_typed_as_printed() {
    let env = Env::new();
    let dir = env.tmp.path();
    let cases: [(&[&str], &str, &str); 4] = [
        (&["--bogus"], "git seal help", "Usage: git seal <COMMAND>"),
        (&["inti"], "git seal help", "Usage: git seal <COMMAND>"),
        (
            &["kek", "--bogus", "list"],
            "git seal help kek",
            "Usage: git seal kek <COMMAND>",
        ),
        (
            &["kek", "list", "--bogus"],
            "git seal help kek list",
            "Usage: git seal kek list",
        ),
    ];
    for (args, hint, usage) in cases {
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
        assert!(help.contains(usage), "`{hint}`:\n{help}");
    }
    // The short help stays short, and the help command needs no manual.
    let short = stdout(&env.ok("git", dir, &["seal", "-h"]));
    assert!(short.contains("see more with '--help'"), "{short}");
    let long = stdout(&env.ok("git", dir, &["seal", "help", "init"]));
    assert!(
        long.contains("Usage: git seal init") && long.contains("--provider"),
        "{long}"
    );
}
