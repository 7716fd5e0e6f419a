#!/bin/sh
# One campaign: ./run.sh TARGET [EXECS]. See README.md.
set -eu
cd "$(dirname "$0")"
t=$1
mkdir -p out
AFL_SKIP_CPUFREQ=1 AFL_NO_UI=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 \
  exec nice -n 19 cargo afl fuzz -c - -b 1 -E "${2:-10000000}" -t 1000 \
  -i "corpus/$t" -o "out/$t" -- "target/release/$t"
