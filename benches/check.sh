#!/usr/bin/env bash
# Benchmark: `git seal check` over a history whose commits share blobs.
#
#   benches/check.sh [COMMITS] [FILES_PER_COMMIT]    (defaults 300 70)
#
# Builds a repository with 1,000 files (half sealed under secrets/, half
# plain) and COMMITS commits that each change FILES_PER_COMMIT of them, so
# about COMMITS x FILES_PER_COMMIT distinct blobs (21,000 by default) are
# shared by many commits. Then times `git seal check` over all of it
# (packed as a CI clone is; release build, best of three) and prints
# distinct blobs per second,
# beside the time plain Git takes to read every object once
# (`git rev-list --objects | git cat-file --batch`). Target (issue 4):
# >= 10,000 blobs/s.
set -euo pipefail
COMMITS=${1:-300}
PER=${2:-70}
source "$(dirname "$0")/common.sh"

repo="$work/repo"
git init -q -b main "$repo"
cd "$repo"
git seal init 'secrets/**' >/dev/null
# Building the history is not what is measured: no hooks while it grows.
git seal hooks uninstall >/dev/null
git add .gitattributes .seal && git commit -qm setup

echo "building $COMMITS commits x $PER changed files..." >&2
t=$(now)
python3 - "$COMMITS" "$PER" <<'PY'
import os, subprocess, sys
commits, per = int(sys.argv[1]), int(sys.argv[2])
files = [f"secrets/d{i % 20:02d}/s{i}.env" for i in range(500)] + \
        [f"src/d{i % 20:02d}/p{i}.txt" for i in range(500)]
def write(path, n):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(f"{path} version {n}\n" + os.urandom(200).hex() + "\n")
for p in files:
    write(p, 0)
def commit(msg):
    subprocess.run(["git", "add", "-A"], check=True)
    subprocess.run(["git", "commit", "-q", "--no-verify", "-m", msg], check=True)
commit("files")
for c in range(1, commits + 1):
    for k in range(per):
        write(files[(c * per + k) % len(files)], c)
    commit(f"change {c}")
PY
echo "built in $(printf '%.1f' "$(elapsed "$t")") s" >&2
# Packed, as a CI clone has it.
git gc -q

git seal check --json > "$work/report.json"
blobs=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["ok"], r["findings"][:3]; print(r["blobs"])' "$work/report.json")
commits=$(git rev-list --count HEAD)
best=
for _ in 1 2 3; do
  t=$(now); git seal check >/dev/null 2>&1; s=$(elapsed "$t")
  if [ -z "$best" ] || [ "$(echo "$s < $best" | bc -l)" = 1 ]; then best=$s; fi
done
t=$(now); git rev-list --objects HEAD | cut -d' ' -f1 | git cat-file --batch >/dev/null; plain=$(elapsed "$t")

printf 'commits: %d, distinct blobs: %d\n' "$commits" "$blobs"
printf 'git seal check: %.3f s = %.0f blobs/s (target >= 10000)\n' "$best" "$(echo "$blobs / $best" | bc -l)"
printf 'plain git reading every object once: %.3f s (check/plain ratio %.2f)\n' "$plain" "$(echo "$best / $plain" | bc -l)"
