//! Packaging, as a user installs without building: `cargo package` (the
//! crate as crates.io would take it) and the Debian package that
//! `packaging/build-deb.sh` builds, installed with dpkg into a root of the
//! test's own, then used: the manual, completions and a sealed commit.
//! Both need tools a user's machine may lack (cargo-deb, dpkg): skipped with
//! a message there, required under CI=true (.ci/run installs cargo-deb).

use std::path::Path;
use std::process::Command;

use crate::harness::{have_tool, in_ci, stderr, stdout, write_file, Env};

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn cargo_package_makes_a_crate_that_builds() {
    let out = Command::new(env!("CARGO"))
        .current_dir(manifest_dir())
        .args(["package", "--locked", "--allow-dirty"])
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo package: {}", stderr(&out));
}

#[test]
fn the_debian_package_installs_and_its_manual_completions_and_filter_work() {
    if !have_tool("cargo-deb", "cargo install --locked cargo-deb")
        || !have_tool("dpkg", "Debian's dpkg")
    {
        return;
    }
    let build = Command::new("bash")
        .current_dir(manifest_dir())
        .arg("packaging/build-deb.sh")
        .env("DEBFULLNAME", "git-seal tests")
        .env("DEBEMAIL", "tests@git-seal.invalid")
        .output()
        .unwrap();
    assert!(build.status.success(), "build-deb.sh: {}", stderr(&build));
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| manifest_dir().join("target"));
    let deb = std::fs::read_dir(target.join("debian"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(&format!("git-seal_{}", env!("CARGO_PKG_VERSION")))
                && name.ends_with(".deb")
        })
        .expect("build-deb.sh made no .deb");

    // dpkg -i into a root of our own: the machine's packages stay as they are.
    let env = Env::new();
    let root = env.path("root");
    std::fs::create_dir_all(root.join("var/lib/dpkg/info")).unwrap();
    std::fs::create_dir_all(root.join("var/lib/dpkg/updates")).unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    let dpkg = |args: &[&str]| {
        let out = Command::new("dpkg")
            .arg(format!("--root={}", root.display()))
            .args([
                "--force-not-root",
                "--force-depends",
                "--force-script-chrootless",
            ])
            .args(["--log=/dev/null"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "dpkg {args:?}: {}", stderr(&out));
    };
    dpkg(&["-i", deb.to_str().unwrap()]);
    let bin = root.join("usr/bin");
    assert!(bin.join("git-seal").exists());
    assert!(root.join("usr/share/man/man1/git-seal.1.gz").exists());
    assert!(root.join("usr/share/man/man1/git-seal-init.1.gz").exists());

    // Used as installed: the package's binary first on PATH, its manual.
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display());
    let man = root.join("usr/share/man");
    let run = |program: &str, dir: &Path, args: &[&str]| {
        let out = env
            .command(program, dir)
            .args(args)
            .env("PATH", &path)
            .env("MANPATH", &man)
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .output()
            .unwrap();
        assert!(out.status.success(), "{program} {args:?}: {}", stderr(&out));
        out
    };
    let dir = env.repo("r");
    run("git", &dir, &["seal", "init", "secrets/**"]);
    write_file(&dir, "secrets/db.env", b"DB_PASSWORD=hunter2\n");
    run("git", &dir, &["add", "-A"]);
    run(
        "git",
        &dir,
        &["commit", "-q", "-m", "sealed by the packaged binary"],
    );
    let stored = run("git", &dir, &["cat-file", "-p", "HEAD:secrets/db.env"]).stdout;
    assert!(crate::harness::is_envelope(&stored));
    if Path::new("/usr/bin/man").exists() || in_ci() {
        let help = stdout(&run("git", &dir, &["seal", "--help"]));
        assert!(help.contains("git-seal") && help.contains("NAME"), "{help}");
    }
    let completion = root.join("usr/share/bash-completion/completions/git-seal");
    let script = format!("source {} && complete -p git-seal", completion.display());
    let listed = stdout(&run("bash", &dir, &["-c", &script]));
    assert!(listed.contains("git-seal"), "{listed}");

    dpkg(&["-r", "git-seal"]);
    assert!(!bin.join("git-seal").exists());
}
