#!/usr/bin/env bash
# Benchmark: git-seal against plain Git and against the floor, a no-op
# long-running filter (benches/noop_filter.rs, built here, not shipped),
# on the same files in one run.
#
#   benches/floor.sh [N_FILES] [BIG_MIB]     (defaults 10000 256)
#   ROUNDS=5 benches/floor.sh 100000         (rounds, interleaved; default 3)
#   SECTIONS="many one big" (default: all three)
#
# many: N files of 1 KiB under secrets/: `git add`, a full checkout, and
#       `git status` after touching every file; medians of interleaved
#       rounds, and git-seal / plain, no-op / plain, git-seal / no-op.
#       A second floor, "envelope no-op": the no-op filter over files that
#       are git-seal's envelopes of the same files, so that Git stores,
#       compresses, hashes and pipes what it does for git-seal (an envelope
#       is ~1.8x its plaintext). git-seal / that is what git-seal's own
#       code costs beyond what its format makes Git do.
# one:  one edited file in that repository: `git add`, `git commit`,
#       `git status` (median of 7), as milliseconds over plain Git.
# big:  one BIG_MIB file: the same three steps, times and peak RSS of the
#       filter process, against plain Git and the no-op.
# Targets: issue 15 (git seal / no-op <= 1.10 for add and status, <= 1.25
# for checkout; one-file add <= plain + 20 ms, commit + 40, status + 15).
set -euo pipefail
N=${1:-10000}
BIG=${2:-256}
ROUNDS=${ROUNDS:-3}
SECTIONS=${SECTIONS:-many one big}
source "$(dirname "$0")/common.sh"

rustc -O --edition 2021 -o "$work/noop-filter" "$root/benches/noop_filter.rs"
# Peak RSS of a filter process: run it under time(1) into a file.
rss_wrap() { # $1 name, $2 command: prints the path of a wrapper script
  local script="$work/$1-rss"
  printf '#!/bin/sh\nexec /usr/bin/time -f %%M -o %s %s\n' "$work/$1.rss" "$2" > "$script"
  chmod +x "$script"
  echo "$script"
}

# 1 KiB text files (random hex) in 100 directories.
files() { make_files "$1" "$2" 506; } # $1 dir, $2 count

# A repository of kind plain, noop or seal, set up and committed, with no
# files under secrets/ yet. $3: the filter command for noop (default the
# no-op itself).
# Every kind's set-up commit has a small directory beside secrets/, as
# git-seal's has .seal/: a checkout that starts from an index holding a
# directory costs Git more (it copies a buffer per file), so all kinds
# start from the same shape.
meta_dir() { mkdir .meta && echo a > .meta/a && echo b > .meta/b; }
setup() { # $1 kind, $2 dir
  git init -q -b main "$2"
  (cd "$2" && case $1 in
    noop|envnoop)
      echo 'secrets/** filter=noop' > .gitattributes
      git config filter.noop.process "${3:-$work/noop-filter}"
      git config filter.noop.required true
      meta_dir
      git add .gitattributes .meta && git commit -qm setup ;;
    seal)
      git seal init 'secrets/**' >/dev/null 2>&1
      git add .gitattributes .seal && git commit -qm setup ;;
    plain)
      meta_dir
      git add .meta && git commit -qm setup ;;
  esac)
}

# A clone of $2 with no work tree checked out yet, set up as $1.
clone_for_checkout() { # $1 kind, $2 from, $3 to
  git clone -q --no-checkout "$2" "$3"
  (cd "$3" && case $1 in
    noop|envnoop)
      git config filter.noop.process "$work/noop-filter"
      git config filter.noop.required true
      git checkout -q HEAD -- .gitattributes .meta ;;
    seal)
      git checkout -q HEAD -- .gitattributes .seal
      git seal init >/dev/null ;;
    plain)
      git checkout -q HEAD -- .meta ;;
  esac)
}

timed() { local t; t=$(now); "$@" >/dev/null; elapsed "$t"; }

if [[ " $SECTIONS " == *" many "* ]]; then
  echo "== $N files x 1 KiB, median of $ROUNDS interleaved rounds =="
  files "$work/src" "$N"
  for round in $(seq "$ROUNDS"); do
    for kind in plain noop seal envnoop; do
      dir="$work/$kind-$round"
      setup "$kind" "$dir"
      if [ "$kind" = envnoop ]; then cp -r "$work/src-env" "$dir/secrets"; else cp -r "$work/src" "$dir/secrets"; fi
      timed git -C "$dir" add -A >> "$work/$kind.add"
      git -C "$dir" commit -qm files
      if [ "$kind" = seal ] && [ ! -d "$work/src-env" ]; then
        # The envelopes as stored: a clone without the filter configured
        # checks them out unopened.
        git clone -q --no-checkout "$dir" "$work/env-export"
        git -C "$work/env-export" checkout -q HEAD -- secrets
        mv "$work/env-export/secrets" "$work/src-env"
        rm -rf "$work/env-export"
      fi
      clone_for_checkout "$kind" "$dir" "$dir.co"
      timed git -C "$dir.co" checkout -q HEAD -- . >> "$work/$kind.co"
      [ -z "$(git -C "$dir.co" status --porcelain)" ] || { echo "$kind: checkout not clean" >&2; exit 1; }
      find "$dir/secrets" -type f -exec touch -d '+1 minute' {} +
      timed git -C "$dir" status --porcelain >> "$work/$kind.st"
      [ -z "$(git -C "$dir" status --porcelain)" ] || { echo "$kind: status not clean" >&2; exit 1; }
      rm -rf "$dir.co"
      [ "$round" = "$ROUNDS" ] || rm -rf "$dir"
    done
  done
  (cd "$work/seal-$ROUNDS" && git cat-file -p HEAD:secrets/d00/s0.env | grep -q '"git-seal.envelope/v1"') \
    || { echo "not sealed" >&2; exit 1; }
  printf '%-22s %8s %8s %8s %8s %10s %10s %10s %10s\n' step plain_s noop_s envnoop_s seal_s \
    noop/plain seal/plain seal/noop seal/envnoop
  for step in add co st; do
    p=$(median < "$work/plain.$step"); o=$(median < "$work/noop.$step")
    e=$(median < "$work/envnoop.$step"); s=$(median < "$work/seal.$step")
    case $step in add) label="git add";; co) label="full checkout";; st) label="status after touch";; esac
    printf '%-22s %8.3f %8.3f %8.3f %8.3f %10s %10s %10s %10s\n' "$label" "$p" "$o" "$e" "$s" \
      "$(ratio "$o" "$p")" "$(ratio "$s" "$p")" "$(ratio "$s" "$o")" "$(ratio "$s" "$e")"
  done
fi

if [[ " $SECTIONS " == *" one "* ]]; then
  echo "== one edited file in a repository of $N sealed files, median of 7 (ms) =="
  for kind in plain seal; do
    dir="$work/$kind-$ROUNDS"
    if [ ! -d "$dir" ]; then
      setup "$kind" "$dir"
      [ -d "$work/src" ] || files "$work/src" "$N"
      cp -r "$work/src" "$dir/secrets"
      (cd "$dir" && git add -A && git commit -qm files)
    fi
  done
  # The many section left every file touched a minute into the future:
  # while a file's mtime is not older than the index, Git finds it racily
  # clean and runs the filter on it at every command, which would be timed
  # here as the cost of one file. Set them in the past and refresh once.
  for kind in plain seal; do
    d="$work/$kind-$ROUNDS"
    find "$d/secrets" -type f -exec touch -d '-1 minute' {} +
    git -C "$d" update-index -q --refresh
  done
  for i in $(seq 7); do
    for kind in plain seal; do
      d="$work/$kind-$ROUNDS"
      echo "edit $i" >> "$d/secrets/d00/s0.env"
      timed git -C "$d" add secrets/d00/s0.env >> "$work/one-$kind.add"
      timed git -C "$d" commit -qm "edit $i" >> "$work/one-$kind.commit"
      echo "again $i" >> "$d/secrets/d00/s0.env"
      timed git -C "$d" status --porcelain >> "$work/one-$kind.status"
      git -C "$d" checkout -q -- secrets/d00/s0.env
    done
  done
  printf '%-12s %9s %9s %9s\n' step plain_ms seal_ms "+ms"
  for step in add commit status; do
    p=$(median < "$work/one-plain.$step"); s=$(median < "$work/one-seal.$step")
    printf '%-12s %9.1f %9.1f %9.1f\n' "git $step" "$(echo "$p*1000" | bc -l)" "$(echo "$s*1000" | bc -l)" "$(echo "($s-$p)*1000" | bc -l)"
  done
fi

if [[ " $SECTIONS " == *" big "* ]]; then
  echo "== one $BIG MiB file: time and the filter's peak RSS =="
  head -c "$((BIG * 1024 * 1024))" /dev/urandom > "$work/big.bin"
  printf '%-8s %-20s %8s %10s %8s\n' kind step seconds x_plain rss/file
  for kind in plain noop seal; do
    dir="$work/big-$kind"
    setup "$kind" "$dir"
    pushd "$dir" >/dev/null
    case $kind in
      noop) git config filter.noop.process "$(rss_wrap noop "$work/noop-filter")" ;;
      seal) git config filter.seal.process "$(rss_wrap seal "git-seal filter-process")" ;;
    esac
    mkdir -p secrets && cp "$work/big.bin" secrets/big.bin
    rm -f "$work/$kind.rss"
    t_add=$(timed git add secrets/big.bin); r_add=$(cat "$work/$kind.rss" 2>/dev/null || echo 0)
    git commit -qm big
    rm secrets/big.bin
    rm -f "$work/$kind.rss"
    t_co=$(timed git checkout -q HEAD -- secrets/big.bin); r_co=$(cat "$work/$kind.rss" 2>/dev/null || echo 0)
    cmp -s "$work/big.bin" secrets/big.bin || { echo "$kind: big file differs" >&2; exit 1; }
    touch -d '+1 minute' secrets/big.bin
    rm -f "$work/$kind.rss"
    t_st=$(timed git status --porcelain); r_st=$(cat "$work/$kind.rss" 2>/dev/null || echo 0)
    popd >/dev/null
    for step in add co st; do
      eval "t=\$t_$step; r=\$r_$step"
      [ "$kind" = plain ] && eval "plain_$step=$t"
      eval "p=\$plain_$step"
      case $step in add) label="git add";; co) label="checkout";; st) label="status after touch";; esac
      printf '%-8s %-20s %8.3f %10s %8s\n' "$kind" "$label" "$t" "$(ratio "$t" "$p")" \
        "$( [ "$kind" = plain ] && echo - || echo "$(ratio "$r" "$((BIG * 1024))")" )"
    done
    rm -rf "$dir"
  done
fi
