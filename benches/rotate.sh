#!/usr/bin/env bash
# Benchmark: `git seal rotate` over the envelopes of one index.
#
#   benches/rotate.sh [FILES] [ROUNDS]    (defaults 10000 5)
#
# A repository with FILES sealed files (300 bytes each) committed; then
# ROUNDS rounds, each timing `git seal rotate` (re-wrap: a new KEK, every
# envelope's DEK wrapped to it, content unchanged) and `git seal rotate
# --reencrypt` (fresh DEKs), interleaved with what plain Git takes to
# stage as many unfiltered files of the same size (`git add` in a plain
# repository). Release build; medians. Target (issue 10): a rotation of
# 10,000 envelopes in at most 2 s.
set -euo pipefail
FILES=${1:-10000}
ROUNDS=${2:-5}
source "$(dirname "$0")/common.sh"


repo="$work/repo"
git init -q -b main "$repo"
cd "$repo"
git seal init 'secrets/**' >/dev/null
git seal hooks uninstall >/dev/null
make_files secrets "$FILES"
echo "sealing $FILES files..." >&2
git add -A && git commit -qm files

plain="$work/plain"
git init -q -b main "$plain"
make_files "$plain/files" "$FILES"

: > "$work/rewrap"; : > "$work/reencrypt"; : > "$work/plain-add"
for round in $(seq "$ROUNDS"); do
  t=$(now); git seal rotate >/dev/null 2>&1; elapsed "$t" >> "$work/rewrap"
  git commit -qm "rotate $round"
  t=$(now); git seal rotate --reencrypt >/dev/null 2>&1; elapsed "$t" >> "$work/reencrypt"
  git commit -qm "rotate --reencrypt $round"
  (cd "$plain" && rm -f .git/index && t=$(now) && git add -A && elapsed "$t") >> "$work/plain-add"
done
changed=$(git show --stat --format= HEAD | tail -1)
rewrap=$(median < "$work/rewrap")
reencrypt=$(median < "$work/reencrypt")
add=$(median < "$work/plain-add")
printf 'envelopes: %d (last rotation: %s)\n' "$FILES" "$changed"
printf 'git seal rotate:             %.3f s median of %d (target <= 2 s), %.2fx plain git add\n' "$rewrap" "$ROUNDS" "$(echo "$rewrap / $add" | bc -l)"
printf 'git seal rotate --reencrypt: %.3f s median of %d, %.2fx plain git add\n' "$reencrypt" "$ROUNDS" "$(echo "$reencrypt / $add" | bc -l)"
printf 'plain git add of %d files:   %.3f s median\n' "$FILES" "$add"
