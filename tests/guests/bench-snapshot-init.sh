# /init body for bench/snapshot: puts 200 MiB of random data in guest RAM
# (a tmpfs file; not zeros, which both VMMs would skip), says so, then prints a line a second.
mount -t tmpfs -o size=300M fill /mnt
yes "nestvm bench: 200 MiB of guest memory in use" | head -c 209715200 > /mnt/fill
echo "BENCH filled"
i=0
while :; do
	echo "alive $i"
	i=$((i + 1))
	sleep 1
done
