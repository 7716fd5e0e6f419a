# Sourced by the benchmarks: a release build of git-seal first on PATH, and
# a hermetic environment in a fresh directory "$work" (removed on exit).
# Sets root, bin, work.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cargo build --release --locked --quiet --manifest-path "$root/Cargo.toml"
bin="$root/target/release"
# On tmpfs when there is one: the VM's disk makes file-creation times swing
# several-fold, which would drown what is measured here (Git's and the
# filter's work). BENCH_DIR overrides.
base=${BENCH_DIR:-$( [ -d /dev/shm ] && [ -w /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}" )}
work=$(mktemp -d "$base/git-seal-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
# rustup finds its toolchains through HOME: keep them (floor.sh builds with rustc).
export RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
export HOME="$work/home" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL="$work/home/gitconfig"
export GIT_SEAL_KEY_DIR="$work/keys" PATH="$bin:$PATH"
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.test
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.test
mkdir -p "$HOME"
# No automatic gc: a commit of thousands of files would start one in the
# background, and it would run during the next measurement.
printf '[gc]\n\tauto = 0\n[maintenance]\n\tauto = false\n' > "$GIT_CONFIG_GLOBAL"

now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc -l; }

# make_files DIR N [RANDOM_BYTES]: N small secret files, each RANDOM_BYTES
# (default 144: about 300 bytes of text) of random bytes in hex, spread
# over 100 directories of DIR as dNN/sI.env.
make_files() {
  python3 - "$1" "$2" "${3:-144}" <<'PY'
import os, sys
base, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    d = os.path.join(base, f"d{i % 100:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"s{i}.env"), "w") as f:
        f.write(f"secret {i} " + os.urandom(size).hex() + "\n")
PY
}

# median < FILE: the median of one number per line.
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# ratio A B: A/B with two decimals.
ratio() { printf '%.2f' "$(echo "$1 / $2" | bc -l)"; }
