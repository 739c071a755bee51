#!/bin/bash
# Builds kvmtool (lkvm), a peer for bench/boot, from its public repository
# into the per-user cache, never into the tree:
#   fetch-kvmtool.sh    prints the path of lkvm on stdout, or exits 1 with
#                       the reason on stderr (no network, no build)
# KVMTOOL_REPO overrides the repository (a URL or a local clone).
# Idempotent: a built lkvm is reused.
set -euo pipefail
repo=${KVMTOOL_REPO:-https://git.kernel.org/pub/scm/linux/kernel/git/will/kvmtool.git}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/nestvm/kvmtool
if [ -x "$cache/src/lkvm" ]; then
	echo "$cache/src/lkvm"
	exit 0
fi
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/src.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
if ! git clone -q --depth 1 "$repo" "$tmp/src" > "$tmp/log" 2>&1; then
	echo "fetch-kvmtool: cannot clone $repo: $(tail -1 "$tmp/log")" >&2
	exit 1
fi
if ! make -C "$tmp/src" -j2 lkvm > "$tmp/log" 2>&1; then
	echo "fetch-kvmtool: building kvmtool failed: $(tail -1 "$tmp/log")" >&2
	exit 1
fi
rm -rf "$cache/src"
mv "$tmp/src" "$cache/src"
echo "$cache/src/lkvm"
