# /init body for bench/snapshot: puts 200 MiB of random data in guest RAM
# (a tmpfs file), says so, then prints a line a second.
mount -t tmpfs -o size=300M fill /mnt
head -c 209715200 /dev/urandom > /mnt/fill
echo "BENCH filled"
i=0
while :; do
	echo "alive $i"
	i=$((i + 1))
	sleep 1
done
