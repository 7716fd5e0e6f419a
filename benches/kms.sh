#!/usr/bin/env bash
# Benchmark: the aws-kms provider against the file provider, in one run.
#
#   benches/kms.sh [FILES] [ROUNDS]    (defaults 10000 5)
#
# Two repositories of FILES sealed files (300 bytes each), one set up with
# `--provider file`, one with `--provider aws-kms` against the moto KMS
# emulator on a loopback port (python3 -m moto.server, from PyPI's
# moto[server]); ROUNDS interleaved rounds, each timing in both a full
# checkout of the tree into an emptied work tree. The aws-kms checkout
# makes one KMS Decrypt (to unlock the KEK), then opens every envelope with
# the X25519 key as the file provider does. Release build; medians.
# Target (issue 12): aws-kms <= 1.1x the file provider.
set -euo pipefail
FILES=${1:-10000}
ROUNDS=${2:-5}
python3 -c 'import moto.server' 2>/dev/null || { echo "moto is not installed: pip install 'moto[server]'" >&2; exit 1; }
source "$(dirname "$0")/common.sh"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m moto.server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null; rm -rf "$work"' EXIT
until python3 -c "import socket; socket.create_connection(('127.0.0.1', $port))" 2>/dev/null; do sleep 0.1; done
export AWS_ENDPOINT_URL_KMS=http://127.0.0.1:$port AWS_REGION=eu-west-1
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret
key=$(python3 - "$AWS_ENDPOINT_URL_KMS" <<'PY'
import sys, boto3
kms = boto3.client("kms", endpoint_url=sys.argv[1], region_name="eu-west-1")
print(kms.create_key(KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]["Arn"])
PY
)


for provider in file aws-kms; do
  repo="$work/$provider"
  git init -q -b main "$repo"
  args=(--provider "$provider")
  [ "$provider" = aws-kms ] && args+=(--kms-key "$key")
  (cd "$repo" && git seal init "${args[@]}" 'secrets/**' >/dev/null 2>&1 &&
    git seal hooks uninstall >/dev/null && make_files secrets "$FILES" && git add -A && git commit -qm files)
done

for provider in file aws-kms; do : > "$work/co-$provider"; done
for round in $(seq "$ROUNDS"); do
  for provider in file aws-kms; do
    cd "$work/$provider"
    rm -rf secrets
    t=$(now); git checkout -q HEAD -- secrets; elapsed "$t" >> "$work/co-$provider"
    [ -z "$(git status --porcelain)" ] || { echo "not clean in $provider" >&2; exit 1; }
  done
done
cd "$work/aws-kms"
grep -q '"custody": "kms"' .seal/keys/*.json || { echo "not under KMS" >&2; exit 1; }
grep -q '^secret 0 ' secrets/d00/s0.env || { echo "not opened" >&2; exit 1; }

cf=$(median < "$work/co-file"); ck=$(median < "$work/co-aws-kms")
printf '%d sealed files, full checkout, medians of %d interleaved rounds (target <= 1.1x)\n' "$FILES" "$ROUNDS"
printf 'file provider:    %.3f s\n' "$cf"
printf 'aws-kms provider: %.3f s  (%.2fx)\n' "$ck" "$(echo "$ck / $cf" | bc -l)"
