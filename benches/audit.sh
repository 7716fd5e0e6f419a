#!/usr/bin/env bash
# Benchmark: `git seal audit verify` speed on a long chain.
#
#   benches/audit.sh [ENTRIES]      (default 50000)
#
# Builds a chain of ENTRIES signed entries and prints the entries verified
# per second by the release binary, with loose objects and after `git gc`;
# then, on the same chain, plain Git reading every entry (`git log -p`, no
# signature checks) as a ratio, and stock `git verify-commit` on 200 entries.
# Target (issue 5): at least 20,000 entries per second.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec cargo bench --locked --quiet --manifest-path "$root/Cargo.toml" --bench audit -- "${1:-50000}"
