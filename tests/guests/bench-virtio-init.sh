# /init body for bench/blk and bench/net: loads the stock virtio drivers and
# runs one measurement, printing "BENCH name value unit" lines.
while read -r module; do
	insmod "/lib/modules/$module.ko" || echo "insmod $module failed"
done < /lib/modules/load.order
arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p"; }
i=0
while [ ! -e /dev/vda ] && [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
case $(arg case) in
blk)
	/bin/blkbench /dev/vda "$(arg seconds)"
	;;
net)
	ip link set eth0 up
	ip addr add 169.254.0.2/16 dev eth0
	i=0
	until ping -c 1 -W 1 169.254.0.1 > /dev/null 2>&1 || [ $i -ge 30 ]; do i=$((i + 1)); done
	mib=$(arg mib)
	t0=$(date +%s.%N)
	head -c $((mib * 1048576)) /dev/zero | nc 169.254.0.1 5000
	t1=$(date +%s.%N)
	echo "BENCH net_tx $(echo "$t0 $t1 $mib" | awk '{ printf "%.1f", $3 * 1.048576 / ($2 - $1) }') MB/s"
	;;
g2g-recv)
	# bench/switch: the receiving guest; answers pings, takes one stream.
	ip link set eth0 up
	ip addr add "$(arg addr)/24" dev eth0
	# (busybox nc -l ends the connection when its own stdin ends: keep it open)
	sleep 600 | nc -l -p 5001 > /dev/null
	sleep 1
	;;
g2g-send | nat-send)
	# bench/switch: ping round trip to the peer, then mib MiB over TCP.
	ip link set eth0 up
	ip addr add "$(arg addr)/24" dev eth0
	peer=$(arg peer)
	i=0
	until ping -c 1 -W 1 "$peer" > /dev/null 2>&1 || [ $i -ge 60 ]; do i=$((i + 1)); done
	if [ "$(arg case)" = g2g-send ]; then
		echo "BENCH rtt_ms $(ping -c 20 -i 0.2 "$peer" | sed -n 's|.*= [0-9.]*/\([0-9.]*\)/.*|\1|p') ms"
	fi
	mib=$(arg mib)
	t0=$(date +%s.%N)
	head -c $((mib * 1048576)) /dev/zero | nc "$peer" "$(arg port)"
	t1=$(date +%s.%N)
	echo "BENCH $(arg case | cut -d- -f1)_tcp $(echo "$t0 $t1 $mib" | awk '{ printf "%.3f", $3 * 1.048576 / ($2 - $1) }') MB/s"
	;;
esac
poweroff -f
