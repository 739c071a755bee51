#!/bin/bash
# Shared by bench/blk and bench/net: builds the guest's initramfs (stock
# virtio modules, the blkbench tool) and runs virtio_inner.sh in a lab host.
#   virtio_bench.sh blk|net ROUNDS
set -euo pipefail
cd "$(dirname "$0")/.."
what=$1 rounds=$2
make -s deps && make -s all  # (two makes: the Makefile reads pkg-config once deps are in)
scripts/fetch-kernel.sh cloud
scripts/fetch-kernel.sh generic
dir=$(mktemp -d "$PWD/build/bench-$what.XXXXXX")
trap 'rm -rf "$dir"' EXIT
gcc -O2 -static -pthread -Wall -Wextra -Werror -o "$dir/blkbench" bench/blkbench.c
scripts/mkinitramfs-modules.sh "$dir/initrd.cpio" tests/guests/bench-virtio-init.sh \
	"virtio_pci virtio_blk virtio_net" "$dir/blkbench:bin/blkbench"
./nestvm labhost --memory 3G --timeout 3000 -- bash bench/virtio_inner.sh "$what" "$dir" "$rounds"
