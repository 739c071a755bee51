#!/bin/bash
# Installs the Debian packages that building, testing and the demo need.
# Idempotent: apt-get runs only when a package is missing.
set -euo pipefail

packages=(
	gcc make libc6-dev          # the build
	libjson-c-dev               # doctor --json, control API, snapshots (linked statically)
	libyaml-dev                 # lab manifests (statically)
	libisofs-dev libjte-dev libacl1-dev libbz2-dev  # lab nodes' cloud-init seed disks, ISO 9660 (statically)
	libsodium-dev               # snapshot manifests signed with the user's key (statically)
	libseccomp-dev              # the seccomp sandbox (statically)
	zlib1g-dev                  # qcow2's compressed clusters (statically)
	libcmocka-dev bats cpio     # unit tests, shell tests, initramfs checks
	genisoimage                 # isoinfo: reading seed images back in the unit tests
	clang libclang-rt-14-dev    # libFuzzer harnesses (make fuzz, the fuzz tier)
	qemu-system-x86             # the lab host (nestvm labhost) and benchmark peers
	qemu-utils                  # qemu-img: the qcow2 images the tests read
	busybox-static              # init of the lab host and of test guests
	lz4 xz-utils python3        # unpacking vmlinux from Debian's bzImage; test and bench helpers
	iproute2                    # taps and bridges in the virtio tests and benchmarks
	mmdebstrap genext2fs e2fsprogs  # nestvm template build debian
	openssh-client              # ssh into Debian lab nodes in the tier-2 tests
	tcpdump                     # reading the switch's pcap captures in its tests
	ca-certificates curl        # apt-get download over https mirrors; libslirp's source
	libglib2.0-dev meson ninja-build pkg-config  # building libslirp (the switch's NAT) static
)

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[[ $status == "install ok installed" ]] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages: ${missing[*]}; install them as root:" >&2
	echo "  apt-get install ${missing[*]}" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
