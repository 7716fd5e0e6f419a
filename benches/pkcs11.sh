#!/usr/bin/env bash
# Benchmark: the PKCS#11 provider (SoftHSM2) against the file provider, in
# one run, on the same files.
#
#   benches/pkcs11.sh [FILES] [ROUNDS]    (defaults 2000 5)
#
# Two repositories of FILES sealed files (300 bytes each), one set up with
# `--provider file`, one with `--provider pkcs11` (a fresh SoftHSM2 token);
# ROUNDS interleaved rounds, each timing in both: `git add` of every file
# with new content (each DEK wrapped: X25519 here, by the token there) and a full checkout of
# the tree into an emptied work tree (each DEK unwrapped). Release build;
# medians. Target (issue 11): each <= 1.5x the file provider.
set -euo pipefail
FILES=${1:-2000}
ROUNDS=${2:-5}
MODULE=/usr/lib/softhsm/libsofthsm2.so
[ -e "$MODULE" ] || { echo "SoftHSM2 is not installed ($MODULE): apt-get install softhsm2" >&2; exit 1; }
source "$(dirname "$0")/common.sh"

mkdir -p "$work/softhsm/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
  "$work/softhsm/tokens" > "$work/softhsm/softhsm2.conf"
export SOFTHSM2_CONF="$work/softhsm/softhsm2.conf"
softhsm2-util --init-token --free --label bench --so-pin 1111 --pin 2222 >/dev/null
export GIT_SEAL_PKCS11_MODULE=$MODULE GIT_SEAL_PKCS11_TOKEN=bench GIT_SEAL_PKCS11_PIN=2222


for provider in file pkcs11; do
  repo="$work/$provider"
  git init -q -b main "$repo"
  (cd "$repo" && git seal init --provider "$provider" 'secrets/**' >/dev/null &&
    git seal hooks uninstall >/dev/null && git add -A && git commit -qm setup) 2>/dev/null
done

for provider in file pkcs11; do : > "$work/add-$provider"; : > "$work/co-$provider"; done
for round in $(seq "$ROUNDS"); do
  for provider in file pkcs11; do
    cd "$work/$provider"
    make_files secrets "$FILES"   # new content: every file is sealed afresh
    t=$(now); git add secrets; elapsed "$t" >> "$work/add-$provider"
    git commit -qm "round $round"
    rm -rf secrets
    t=$(now); git checkout -q HEAD -- secrets; elapsed "$t" >> "$work/co-$provider"
    [ -z "$(git status --porcelain)" ] || { echo "not clean in $provider" >&2; exit 1; }
  done
done
cd "$work/pkcs11"
git cat-file -p HEAD:secrets/d00/s0.env | grep -q '"wrap": "pkcs11-aes-256-gcm"' || { echo "not sealed by the token" >&2; exit 1; }
grep -q '^secret 0 ' secrets/d00/s0.env || { echo "not opened" >&2; exit 1; }

af=$(median < "$work/add-file"); ap=$(median < "$work/add-pkcs11")
cf=$(median < "$work/co-file"); cp=$(median < "$work/co-pkcs11")
printf '%d sealed files, medians of %d interleaved rounds (target <= 1.5x)\n' "$FILES" "$ROUNDS"
printf '%-26s %8s %8s %6s\n' step file_s pkcs11_s ratio
printf '%-26s %8.3f %8.3f %6s\n' "git add (every DEK wrapped)" "$af" "$ap" "$(ratio "$ap" "$af")"
printf '%-26s %8.3f %8.3f %6s\n' "checkout (full tree)" "$cf" "$cp" "$(ratio "$cp" "$cf")"
