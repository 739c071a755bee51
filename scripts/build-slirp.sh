#!/bin/bash
# Builds libslirp (the NAT of `nestvm switch --nat`) as a static library
# from Debian's source package, into .cache/slirp/{include,lib}.
#
# Why not Debian's libslirp-dev: it ships only a shared library, and
# nestvm is one static binary so that it runs inside busybox guests (an L1
# lab node runs its own switch). The source is the same Debian release
# (4.7.0-1, checked by its SHA-256), built with Debian's static glib.
#
# The download and the built library are kept in a per-user cache outside
# the tree (~/.cache/nestvm), so a fresh clone (every CI run) copies them
# in without downloading or compiling again. Idempotent.
set -euo pipefail

version=4.7.0
tarball=libslirp_$version.orig.tar.bz2
sha256=358ce8b6ea59ec9deac937cc754f0115b992839e7b0cddf30ffb8f77dc21da82
url=https://deb.debian.org/debian/pool/main/libs/libslirp/$tarball

top=$(cd "$(dirname "$0")/.." && pwd)
dest=$top/.cache/slirp
user_cache=${XDG_CACHE_HOME:-$HOME/.cache}/nestvm
built=$user_cache/slirp-$version-$(gcc -dumpfullversion)

if [ -f "$dest/lib/libslirp.a" ] && [ -f "$dest/include/slirp/libslirp.h" ]; then
	exit 0
fi

for tool in meson ninja pkg-config; do
	if ! command -v "$tool" > /dev/null; then
		echo "build-slirp: $tool is missing; run 'make deps' first" >&2
		exit 1
	fi
done
if ! pkg-config --exists glib-2.0; then
	echo "build-slirp: glib-2.0 (libglib2.0-dev) is missing; run 'make deps' first" >&2
	exit 1
fi

if [ ! -f "$built/lib/libslirp.a" ]; then
	mkdir -p "$user_cache/src"
	if [ ! -f "$user_cache/src/$tarball" ]; then
		echo "build-slirp: downloading $tarball"
		tmp=$(mktemp "$user_cache/src/.$tarball.XXXXXX")
		if ! curl -sSfL --retry 2 -o "$tmp" "$url"; then
			rm -f "$tmp"
			echo "build-slirp: could not download $url" >&2
			exit 1
		fi
		mv "$tmp" "$user_cache/src/$tarball"
	fi
	if ! echo "$sha256  $user_cache/src/$tarball" | sha256sum -c --quiet - > /dev/null 2>&1; then
		echo "build-slirp: $user_cache/src/$tarball: SHA-256 mismatch; removed, run again" >&2
		rm -f "$user_cache/src/$tarball"
		exit 1
	fi
	work=$(mktemp -d "$user_cache/.slirp-build.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	tar -C "$work" -xjf "$user_cache/src/$tarball"
	src=$(echo "$work"/libslirp-*)
	echo "build-slirp: building libslirp $version (static)"
	meson setup --default-library=static --buildtype=release -Db_pie=true \
		--prefix="$work/install" --libdir=lib "$work/build" "$src" > "$work/meson.log" 2>&1 ||
		{ cat "$work/meson.log" >&2; exit 1; }
	ninja -C "$work/build" install > "$work/ninja.log" 2>&1 || { tail -n 30 "$work/ninja.log" >&2; exit 1; }
	rm -rf "$built.tmp"
	mkdir -p "$built.tmp/lib"
	cp "$work/install/lib/libslirp.a" "$built.tmp/lib/"
	cp -r "$work/install/include" "$built.tmp/"
	rm -rf "$built"
	mv "$built.tmp" "$built"
fi

rm -rf "$dest"
mkdir -p "$dest"
cp -r "$built/lib" "$built/include" "$dest/"
