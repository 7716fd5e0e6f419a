#!/usr/bin/env bash
# Benchmark: sealed vs plain Git on the same files, and one large file.
#
#   benches/filter.sh [N_FILES] [FILE_KIB] [BIG_MIB]    (defaults 10000 1 256)
#
# Prints, for N files of FILE_KIB KiB each, sealed/plain time ratios for
# `git add`, a full checkout of the tree, and `git status` after touching
# every file; then MiB/s and peak RSS for sealing and opening one BIG_MIB
# file (git-seal encrypt/decrypt, and the filter through git add/checkout).
# Targets (issue 3): ratios <= 1.5, >= 1 GiB/s, peak RSS <= 3.5x file size.
set -euo pipefail
N=${1:-10000}
KIB=${2:-1}
BIG=${3:-256}
source "$(dirname "$0")/common.sh"


# N files of random bytes (hex, so they are text) in a few directories.
make_files() {
  local dir=$1
  mkdir -p "$dir/secrets"
  python3 - "$dir/secrets" "$N" "$KIB" <<'PY'
import os, sys
d, n, kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    sub = os.path.join(d, f"d{i % 100:02d}")
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, f"f{i}.txt"), "w") as f:
        f.write(os.urandom(kib * 512).hex())
PY
}

setup_repo() { # $1 dir, $2 sealed?
  git init -q -b main "$1"
  if [ "$2" = yes ]; then (cd "$1" && git seal init 'secrets/**' >/dev/null && git add .gitattributes .seal && git commit -qm setup); fi
}

measure() { # $1 dir; prints add checkout status times
  local dir=$1 t add co st
  cd "$dir"
  t=$(now); git add -A; add=$(elapsed "$t")
  git commit -qm files
  # Full checkout of the tree into a fresh clone's empty work tree.
  git clone -q --no-checkout "$dir" "$dir.co"
  cd "$dir.co"
  git checkout -q HEAD -- .gitattributes 2>/dev/null || true
  if [ -d "$dir/.seal" ]; then git checkout -q HEAD -- .seal && git seal init >/dev/null; fi
  t=$(now); git checkout -q HEAD -- .; co=$(elapsed "$t")
  [ -z "$(git status --porcelain)" ] || { echo "checkout not clean in $dir.co" >&2; exit 1; }
  cd "$dir"
  find secrets -type f -exec touch -d '+1 minute' {} +
  t=$(now); git status --porcelain >/dev/null; st=$(elapsed "$t")
  [ -z "$(git status --porcelain)" ] || { echo "status not clean in $dir" >&2; exit 1; }
  cd - >/dev/null
  echo "$add $co $st"
}

echo "== $N files x ${KIB} KiB =="
setup_repo "$work/plain" no; make_files "$work/plain"
setup_repo "$work/sealed" yes; cp -r "$work/plain/secrets" "$work/sealed/"
read -r pa pc ps < <(measure "$work/plain")
read -r sa sc ss < <(measure "$work/sealed")
(cd "$work/sealed" && git cat-file -p HEAD:secrets/d00/f0.txt | grep -q '"schema": "git-seal.envelope/v1"') || { echo "not sealed" >&2; exit 1; }
printf '%-30s %8s %8s %6s\n' step plain_s sealed_s ratio
printf '%-30s %8.3f %8.3f %6s\n' "git add" "$pa" "$sa" "$(ratio "$sa" "$pa")"
printf '%-30s %8.3f %8.3f %6s\n' "checkout (full tree)" "$pc" "$sc" "$(ratio "$sc" "$pc")"
printf '%-30s %8.3f %8.3f %6s\n' "status after touch" "$ps" "$ss" "$(ratio "$ss" "$ps")"

echo "== one ${BIG} MiB file =="
big="$work/big.bin"
head -c "$((BIG * 1024 * 1024))" /dev/urandom > "$big"
# rss IN OUT CMD...: run CMD with stdin IN and stdout OUT, print peak RSS in MiB.
rss() { local in=$1 out=$2; shift 2; /usr/bin/time -f '%M' -o "$work/rss" "$@" < "$in" > "$out"; echo $(( $(cat "$work/rss") / 1024 )); }
cd "$work/sealed"
t=$(now); rss_seal=$(rss /dev/null /dev/null git seal encrypt "$big" --out "$work/big.sealed"); ts=$(elapsed "$t")
t=$(now); rss_open=$(rss /dev/null /dev/null git seal decrypt "$work/big.sealed" --out "$work/big.out"); to=$(elapsed "$t")
cmp -s "$big" "$work/big.out" || { echo "round trip differs" >&2; exit 1; }
echo "(encrypt/decrypt write their --out file with fsync; clean/smudge stream stdout)"
printf 'encrypt: %6.0f MiB/s  peak RSS %5d MiB (%.2fx)\n' "$(echo "$BIG / $ts" | bc -l)" "$rss_seal" "$(echo "$rss_seal / $BIG" | bc -l)"
printf 'decrypt: %6.0f MiB/s  peak RSS %5d MiB (%.2fx)\n' "$(echo "$BIG / $to" | bc -l)" "$rss_open" "$(echo "$rss_open / $BIG" | bc -l)"
cp "$big" secrets/big.bin
t=$(now); rss_clean=$(rss secrets/big.bin "$work/big.clean" git seal clean secrets/big.bin); tc=$(elapsed "$t")
t=$(now); rss_smudge=$(rss "$work/big.clean" "$work/big.smudged" git seal smudge secrets/big.bin); tm=$(elapsed "$t")
cmp -s "$big" "$work/big.smudged" || { echo "filter round trip differs" >&2; exit 1; }
printf 'filter clean:  %6.0f MiB/s  peak RSS %5d MiB (%.2fx)\n' "$(echo "$BIG / $tc" | bc -l)" "$rss_clean" "$(echo "$rss_clean / $BIG" | bc -l)"
printf 'filter smudge: %6.0f MiB/s  peak RSS %5d MiB (%.2fx)\n' "$(echo "$BIG / $tm" | bc -l)" "$rss_smudge" "$(echo "$rss_smudge / $BIG" | bc -l)"
