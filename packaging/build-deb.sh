#!/usr/bin/env bash
# Build git-seal's Debian package: the release binary in /usr/bin, its man
# pages in /usr/share/man/man1 (cargo-deb gzips them) and its bash, zsh and
# fish completions. Needs cargo-deb (`cargo install --locked cargo-deb`),
# and dpkg-dev for the shared-library dependencies (`$auto`).
#
#   DEBFULLNAME='Your Name' DEBEMAIL=you@example.org packaging/build-deb.sh
#
# names you as the package's maintainer, as Debian's own tools do: the
# project states none. The package lands in target/debian/; `dpkg -i` it.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
cargo build --release --locked
git_seal=$target/release/git-seal

# What [package.metadata.deb] in Cargo.toml installs from target/packaging,
# rendered by this very binary. Not under target/release: cargo-deb takes
# what is there for build output, which it does not compress.
out=target/packaging
rm -rf "$out"
mkdir -p "$out"
"$git_seal" manual --install --dir "$out/man"
"$git_seal" completions bash >"$out/git-seal.bash"
"$git_seal" completions zsh >"$out/_git-seal"
"$git_seal" completions fish >"$out/git-seal.fish"

# The Maintainer field, from DEBFULLNAME and DEBEMAIL as dch has it (or a
# DEBEMAIL of 'Name <address>'); without them the package has none.
maintainer=()
case ${DEBEMAIL:-} in
  '') ;;
  *'<'*) maintainer=(--maintainer "$DEBEMAIL") ;;
  *) maintainer=(--maintainer "${DEBFULLNAME:?DEBFULLNAME goes with DEBEMAIL} <$DEBEMAIL>") ;;
esac
cargo deb --locked --no-build "${maintainer[@]}"
