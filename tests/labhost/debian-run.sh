#!/bin/bash
# Runs inside the lab host (tests/labhost/debian.bats): a three-node lab from
# the Debian template (nestvm template build debian): a jump node and two
# nested hypervisor nodes on a NAT network, each hypervisor running an
# inner node (the test guest) with the template's own nestvm-lab unit,
# brought up and down by `nestvm lab` as nobody. Each node is asked over
# ssh, through its forward, who it is. Prints one RESULT line per case.
#   debian-run.sh DIR   (DIR holds the template's files, key and key.pub)
set -u
dir=$1
st=/tmp/debian-state
mkdir -p "$st" "$dir/home"
chmod 777 "$st" "$dir/home"
as="setpriv --reuid=65534 --regid=$(stat -c %g /dev/kvm) --clear-groups --inh-caps=-all -- env HOME=$dir/home"
# The template on the lab host's own file system, as a user's would be (the
# shared 9p directory does not carry the image locks between processes).
tpl=/tmp/debian-template
mkdir -p $tpl
start=$SECONDS
cp "$dir/vmlinuz" "$dir/initrd.img" "$dir/disk.qcow2" $tpl/
chmod 755 $tpl && chmod 644 $tpl/*
echo "RESULT copy seconds=$((SECONDS - start))"
# hv1's second inner node: the busybox template's, on the lab's network
./nestvm template build busybox /tmp/busybox-template > "$dir/bbt.out" 2>&1
cat > "$dir/lab.yaml" <<YAML
name: deb3
ssh_keys: [$dir/key.pub]
defaults: {template: debian, memory: 640M}
templates:
  debian: {kernel: $tpl/vmlinuz, initrd: $tpl/initrd.img, disk: $tpl/disk.qcow2,
           cmdline: "console=ttyS0 root=/dev/vda rw net.ifnames=0", identity: cloud-init}
  tiny: {kernel: $PWD/build/guest/testguest.elf, cmdline: "test=count"}
  bb: {kernel: /tmp/busybox-template/vmlinuz, initrd: /tmp/busybox-template/initrd.img,
       cmdline: "console=ttyS0 quiet panic=-1"}
networks:
  lan:
    nat: 169.254.92.0/24
    forwards:
      - {node: jump, port: 22, host_port: 6222}
      - {node: hv1, port: 22, host_port: 6223}
      - {node: hv2, port: 22, host_port: 6224}
nodes:
  jump: {nics: [{network: lan}], health: {tcp: 22}}
  hv1:
    nested: true
    memory: 768M
    nics: [{network: lan}]
    health: {tcp: 22}
    inner:
      vm: {template: tiny, memory: 32M, health: {console: "count 2"}}
      web: {template: bb, memory: 128M, nics: [{network: lan}], health: {console: "nestvm-node: ready"}}
  hv2:
    nested: true
    memory: 768M
    nics: [{network: lan}]
    health: {tcp: 22}
    inner:
      vm: {template: tiny, memory: 32M, health: {console: "count 2"}}
YAML
lab() { # lab ACTION [ARGS...]: as nobody
	$as ./nestvm lab "$1" "$dir/lab.yaml" --state-dir "$st" "${@:2}"
}
flat() { tr '\n' '|' | tr ' ' _; }

# --- up: every node healthy (sshd's banner through its forward; the
# hypervisors once their inner node is up too)
start=$SECONDS
up=$(lab up --timeout 900 2> "$dir/up.err")
up_status=$?
echo "RESULT up status=$up_status seconds=$((SECONDS - start)) out=$(echo "$up" | flat) err=$(flat < "$dir/up.err")"
lab status --json > "$dir/status.json" 2> "$dir/status.err"

# --- each node, over ssh through its forward, as the image's default user
# with the lab's key: who it is
port=6222
for n in jump hv1 hv2; do
	timeout 120 ssh -q -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
		-o ConnectTimeout=60 -i "$dir/key" -p $port debian@127.0.0.1 '
		echo "hostname=$(hostname)"
		echo "machine_id=$(cat /etc/machine-id)"
		echo "uuid=$(sudo cat /sys/class/dmi/id/product_uuid)"
		echo "serial=$(sudo cat /sys/class/dmi/id/product_serial)"
		echo "mac=$(cat /sys/class/net/eth0/address)"
		echo "ip=$(ip -4 -o addr show eth0 | awk "{print \$4}" | cut -d/ -f1)"
		echo "hostkey=$(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub | cut -d" " -f2)"
		echo "kvm=$(test -c /dev/kvm && echo yes || echo no)"
		echo "instance=$(cloud-init query instance_id 2> /dev/null || sudo cat /var/lib/cloud/data/instance-id)"
		' > "$dir/$n.said" 2> "$dir/$n.ssh-err"
	echo "ssh $n status=$?" >> "$dir/ssh-status"
	port=$((port + 1))
done
python3 - "$dir" <<'PY'
import json, sys
d = sys.argv[1]
s = {n["name"]: n for n in json.load(open(d + "/status.json"))["nodes"]}
said, out = {}, []
for name in ("jump", "hv1", "hv2"):
    kv = dict(l.split("=", 1) for l in open("%s/%s.said" % (d, name)).read().split("\n") if "=" in l)
    said[name] = kv
    n = s.get(name, {})
    out.append("%s:state=%s,host=%s,uuid=%s,mac=%s,ip=%s,instance=%s,kvm=%s,machine_id=%s,hostkey=%s" % (
        name, n.get("state"), kv.get("hostname"),
        "same" if kv.get("uuid", "").lower() == n.get("uuid") else "status:%s,guest:%s" % (n.get("uuid"), kv.get("uuid")),
        "same" if kv.get("mac") == (n.get("macs") or [None])[0] else "status:%s,guest:%s" % (n.get("macs"), kv.get("mac")),
        "same" if kv.get("ip") and [kv.get("ip")] == n.get("addresses") else "status:%s,guest:%s" % (n.get("addresses"), kv.get("ip")),
        "same" if kv.get("instance") == n.get("uuid") else kv.get("instance"),
        kv.get("kvm"),
        "ok" if len(kv.get("machine_id", "")) == 32 else "bad:%s" % kv.get("machine_id"),
        "ok" if kv.get("hostkey", "").startswith("SHA256:") else "bad:%s" % kv.get("hostkey")))
distinct = [k for k in ("hostname", "machine_id", "uuid", "mac", "ip", "hostkey", "serial")
            if len({said[n].get(k) for n in said}) == 3 and all(said[n].get(k) for n in said)]
print("RESULT identity " + " ".join(out) + " distinct=" + "+".join(distinct))
PY
echo "RESULT ssh $(flat < "$dir/ssh-status") err=$(cat "$dir"/*.ssh-err | head -c 300 | flat)"

# --- the inner nodes: each hypervisor's nestvm-lab unit started its own
python3 -c '
import json, sys
print("RESULT inner " + " ".join("%s:%s:%s" % (n["name"], "+".join(n.get("inner", [])), n.get("inner_state"))
      for n in json.load(open(sys.argv[1]))["nodes"] if n["name"].startswith("hv")))' "$dir/status.json"

# --- hv1's busybox inner node on the lab's network through hv1's uplink
# NIC: its DHCP lease (by the hostname it sends) at the lab's NAT
./nestvm ctl "$st/deb3/lan.switch-api" status > "$dir/switch.json" 2> /dev/null
python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
leases = ["%s:%s:%s" % (l.get("hostname"), l["ip"], l["state"]) for l in s.get("nat", {}).get("leases", [])
          if l.get("hostname") == "hv1-web"]
ports = [p["name"] for p in s["ports"]]
print("RESULT innerweb leases=%s ports=%d" % ("+".join(leases) or "none", len(ports)))' "$dir/switch.json"
echo "RESULT innerlog $(grep -ah 'nestvm-lab\|lab-inner\|up.sh' "$st/deb3/hv1.console" | tail -n 5 | flat)"

# --- down: graceful (each powered off by its ACPI button), nothing left
down=$(lab down --timeout 120 2> "$dir/down.err")
down_status=$?
left=$(pgrep -f "$st/deb3" | wc -l)
sockets=$(find "$st" -type s | wc -l)
echo "RESULT down status=$down_status out=$(echo "$down" | flat) err=$(flat < "$dir/down.err") processes=$left sockets=$sockets"
for n in jump hv1 hv2; do
	tail -c 300000 "$st/deb3/$n.console" > "$dir/$n.console" 2> /dev/null
done
