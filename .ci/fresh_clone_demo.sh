#!/usr/bin/env bash
# `make install && make demo` in a fresh clone of this checkout's HEAD, under a new temp folder that holds
# nothing else (so no sibling shared/ folder), with the demo itself cut off from the network when the kernel
# allows (a network namespace): proves that the demo needs only the repository and the package installs.
# Uncommitted changes are not in the clone: commit first. Costs a second `make install` (~1.5 min from a
# warm pip cache) and one demo run (~3-6 min on 2 cores).
#
#   .ci/fresh_clone_demo.sh                 clone, install, demo, remove the clone
#   FRESH_KEEP=1 .ci/fresh_clone_demo.sh    keep the clone (its path is printed) to look at results/demo/
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
PARENT=$(mktemp -d /tmp/fmwsss-fresh.XXXXXX)
CLONE=$PARENT/fmwsss
log() { echo "== fresh-clone demo: $*" >&2; }
if [ "${FRESH_KEEP:-0}" = 1 ]; then
    trap 'log "kept $CLONE"' EXIT
else
    trap 'rm -rf "$PARENT"' EXIT
fi

git clone -q --no-checkout "$SRC" "$CLONE"
git -C "$CLONE" checkout -q "$(git -C "$SRC" rev-parse HEAD)"
log "$(git -C "$CLONE" log -1 --format='%h %s') in $CLONE; beside it: $(ls -A "$PARENT" | tr '\n' ' ')"
cd "$CLONE"

start=$SECONDS
make install
log "make install: $((SECONDS - start)) s"

offline=()
if unshare -n true 2>/dev/null; then
    offline=(unshare -n)
elif unshare -rn true 2>/dev/null; then
    offline=(unshare -rn)
else
    log "no network namespace available here: the demo runs with the network reachable"
fi
start=$SECONDS
env -u FMWSSS_SHARED_DATA ${offline[@]+"${offline[@]}"} make demo
log "make demo${offline[*]:+ (no network: ${offline[*]})}: $((SECONDS - start)) s"
