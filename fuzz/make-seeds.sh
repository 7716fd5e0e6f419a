#!/bin/sh
# Remake the real seeds in corpus/: a repository set up by the real
# `git-seal` binary, with Git's own filter-process sessions recorded as Git
# sent them (a wrapper tees Git's side into a file), and the policy,
# .gitattributes, entry.json and signed chain commit it wrote. Hermetic:
# temporary HOME, no user or system Git config. Run from fuzz/ after
# `cargo build --bin git-seal` in the parent directory; writes only
# corpus/*/real-*.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${GIT_SEAL_BIN:-$here/../target/debug/git-seal}
test -x "$bin" || { echo "build git-seal first ($bin)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/home" "$tmp/bin" "$tmp/rec"
ln -s "$bin" "$tmp/bin/git-seal"
cat > "$tmp/bin/record-filter" <<'REC'
#!/bin/sh
# Git's side of the session into a file, then the real filter.
tee "$REC_DIR/session-$(date +%s%N)" | git-seal filter-process
REC
chmod +x "$tmp/bin/record-filter"
export HOME="$tmp/home" XDG_DATA_HOME="$tmp/home/.local/share" \
  GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 \
  GIT_SEAL_KEY_DIR="$tmp/home/keys" REC_DIR="$tmp/rec" \
  GIT_AUTHOR_NAME="Ada Tester" GIT_AUTHOR_EMAIL=ada@example.test \
  GIT_COMMITTER_NAME="Ada Tester" GIT_COMMITTER_EMAIL=ada@example.test \
  GIT_AUTHOR_DATE=2026-01-02T03:04:05Z GIT_COMMITTER_DATE=2026-01-02T03:04:05Z \
  PATH="$tmp/bin:$PATH" LANG=C TZ=UTC
repo="$tmp/repo"
git init -q -b main "$repo"
cd "$repo"
echo hello > README
git add README && git commit -q -m initial
git seal init 'secrets/**' '*.env' >/dev/null 2>&1
git add .seal .gitattributes && git commit -q -m 'seal secrets'
git config filter.seal.process record-filter
mkdir -p secrets
printf 'TOKEN=s3cret\n' > secrets/app.env
printf 'password: hunter2\r\n' > secrets/db.yml
git add secrets && git commit -q -m 'add secrets'
rm -f secrets/app.env secrets/db.yml
git checkout -q -- secrets
git checkout -q -b other && git checkout -q main
git rm -q --cached secrets/db.yml && git reset -q --hard

mkdir -p "$here/corpus/filter_process" "$here/corpus/pktline" \
  "$here/corpus/policy" "$here/corpus/audit"
n=0
for s in "$tmp"/rec/session-*; do
  test -s "$s" || continue
  # Many commands send the same session (one clean of each file): keep one.
  sum=$(cksum < "$s")
  case " ${seen:-} " in *" ${sum%% *} "*) continue ;; esac
  seen="${seen:-} ${sum%% *}"
  n=$((n + 1))
  cp "$s" "$here/corpus/filter_process/real-session-$n"
  # The pktline target reads its first byte as the reader to start with.
  { printf '\002'; cat "$s"; } > "$here/corpus/pktline/real-session-$n"
done
cp .seal/policy.json "$here/corpus/policy/real-policy.json"
cp .gitattributes "$here/corpus/policy/real-gitattributes"
i=0
for c in $(git rev-list refs/seal/audit); do
  i=$((i + 1))
  git cat-file blob "$c:entry.json" > "$here/corpus/audit/real-entry-$i.json"
  test $i -gt 1 || git cat-file commit "$c" > "$here/corpus/audit/real-commit"
done
echo "recorded $n filter sessions" >&2
