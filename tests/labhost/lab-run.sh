#!/bin/bash
# Runs inside the lab host (tests/labhost/lab.bats): a two-node lab of Linux
# guests (Debian's stock cloud kernel) on a NAT network, one of them a
# hypervisor running an inner node (the test guest), brought up, looked
# at, snapshotted and restored, and taken down by `nestvm lab`, run as
# nobody (no root, no capability). Prints one RESULT line per case. The
# lab's state is in the lab host's /tmp (its snapshots stay off 9p).
#   lab-run.sh DIR   (DIR holds lab.cpio)
set -u
dir=$1
kernel=$(ls .cache/kernels/cloud/boot/vmlinuz-*)
st=/tmp/lab-state
mkdir -p "$st" "$dir/home"
chmod 777 "$st" "$dir/home"
as="setpriv --reuid=65534 --regid=$(stat -c %g /dev/kvm) --clear-groups --inh-caps=-all -- env HOME=$dir/home"
# The template on the lab host's own file system, as a user's would be (the
# shared 9p directory does not carry the image locks between processes).
qemu-img create -q -f qcow2 /tmp/tpl.qcow2 16M
chmod 644 /tmp/tpl.qcow2
# The busybox template (nestvm template build busybox), built, then found
# up to date
bbt=/tmp/busybox-template
first=$(./nestvm template build busybox $bbt 2>&1)
second=$(./nestvm template build busybox $bbt 2>&1)
echo "RESULT bbtemplate first=$(echo "$first" | tr '\n' '|' | tr ' ' _) second=$(echo "$second" | tr '\n' '|' | tr ' ' _) files=$(ls $bbt | tr '\n' ,)"
cat > "$dir/lab.yaml" <<YAML
name: tier2
templates:
  node: {kernel: $PWD/$kernel, initrd: $dir/lab.cpio, disk: /tmp/tpl.qcow2,
         cmdline: "console=ttyS0 quiet panic=-1"}
  tiny: {kernel: $PWD/build/guest/testguest.elf, cmdline: "test=count"}
  busybox: {kernel: $bbt/vmlinuz, initrd: $bbt/initrd.img, cmdline: "console=ttyS0 quiet panic=-1"}
networks:
  lan:
    nat: 169.254.90.0/24
    forwards: [{node: jump, port: 22, host_port: 6122}]
nodes:
  jump: {template: node, memory: 160M, nics: [{network: lan, ip: 169.254.90.40}],
         health: {tcp: 22}}
  hv1:
    template: node
    memory: 384M
    nested: true
    depends_on: [jump]
    nics: [{network: lan}]
    health: {console: "V: ready"}
    inner:
      vm: {template: tiny, memory: 32M, health: {console: "count 2"}}
  bb: {template: busybox, memory: 128M, depends_on: [hv1], nics: [{network: lan}],
       health: {console: "nestvm-node: ready"}}
YAML
lab() { # lab ACTION [ARGS...]: as nobody
	$as ./nestvm lab "$1" "$dir/lab.yaml" --state-dir "$st" "${@:2}"
}
last() { # last FILE: the last tick the node printed
	grep -a "^tick [0-9]" "$1" | tail -n 1 | tr -d '\r' | cut -d' ' -f2
}
flat() { tr '\n' '|' | tr ' ' _; }

# --- up: jump healthy once its port 22 answers through the forward, then
# hv1 once its console says ready
start=$SECONDS
up=$(lab up --timeout 480 2> "$dir/up.err")
up_status=$?
echo "RESULT up status=$up_status seconds=$((SECONDS - start)) out=$(echo "$up" | flat) err=$(flat < "$dir/up.err")"

# --- what status says, against what each guest says of itself
lab status --json > "$dir/status.json" 2> "$dir/status.err"
for n in jump hv1; do
	grep -a '^V: host=' "$st/tier2/$n.console" | head -n 1 | tr -d '\r' | cut -c4- > "$dir/$n.said"
done
python3 - "$dir" <<'PY'
import json, os, sys
d = sys.argv[1]
s = json.load(open(d + "/status.json"))
out = []
for n in s["nodes"]:
    if n["name"] == "bb":
        continue
    said = dict(kv.split("=", 1) for kv in open("%s/%s.said" % (d, n["name"])).read().split())
    out.append("%s:state=%s,uuid=%s,mac=%s,lease=%s,addresses=%s,forwards=%s,host=%s,uid=%s" % (
        n["name"], n["state"],
        "same" if said.get("uuid") == n["uuid"] else "status:%s,guest:%s" % (n["uuid"], said.get("uuid")),
        "same" if said.get("mac") == n["macs"][0] else "status:%s,guest:%s" % (n["macs"], said.get("mac")),
        said.get("lease", "none").split("/")[0],
        "+".join(n["addresses"]) or "none",
        "+".join(n["forwards"]) or "none",
        said.get("host"),
        [l.split()[1] for l in open("/proc/%d/status" % n["pid"]) if l.startswith("Uid:")][0] if n["pid"] else "-"))
print("RESULT status " + " ".join(sorted(out)))
PY

# --- the inner node: hv1 started it (the lab waited for that), and it counts
lab status --json > "$dir/status2.json"
echo "RESULT inner said=$(grep -a '^V: inner ' "$st/tier2/hv1.console" | head -n 1 | tr -d '\r' | cut -c4- | tr ' ' _) status=$(python3 -c '
import json, sys
n = [n for n in json.load(open(sys.argv[1]))["nodes"] if n["name"] == "hv1"][0]
print("%s:%s" % ("+".join(n.get("inner", [])), n.get("inner_state")))' "$dir/status2.json")"

# --- the forward: jump's greeting on the lab host's port 6122
greeting=$( (sleep 2) | timeout 20 busybox nc 127.0.0.1 6122 2> /dev/null | tr -d '\r' | head -n 1)
echo "RESULT forward got=$greeting"

# --- the busybox template's node: its name and DHCP address, as status has them
bbsaid=$(grep -a '^nestvm-node: bb address ' "$st/tier2/bb.console" | head -n 1 | tr -d '\r' | cut -d' ' -f4)
bbstatus=$(python3 -c '
import json, sys
n = [n for n in json.load(open(sys.argv[1]))["nodes"] if n["name"] == "bb"][0]
print("%s,%s" % (n["state"], "+".join(n["addresses"]) or "none"))' "$dir/status2.json")
echo "RESULT bbnode said=$bbsaid status=$bbstatus ready=$(grep -ac '^nestvm-node: ready' "$st/tier2/bb.console")"


# --- snapshot: both nodes saved at one moment, then restored going on
before=$(last "$st/tier2/hv1.console")
t_save=$SECONDS
save=$(lab snapshot save s1 2> "$dir/save.err")
t_save=$((SECONDS - t_save))
save_status=$?
after=$(last "$st/tier2/hv1.console")
sleep 3
later=$(last "$st/tier2/hv1.console")
t_restore=$SECONDS
restore=$(lab snapshot restore s1 --timeout 240 2> "$dir/restore.err")
t_restore=$((SECONDS - t_restore))
restore_status=$?
sleep 4
# The restored node's first tick: where the count steps back (the node ran
# on after the save until the restore stopped it; the log goes on).
first=$(tr -d '\r' < "$st/tier2/hv1.console" | awk '/^tick [0-9]+$/ { v = $2 + 0; if (seen && v <= prev) { print v; exit } prev = v; seen = 1 }')
now=$(last "$st/tier2/hv1.console")
again=$( (sleep 2) | timeout 20 busybox nc 127.0.0.1 6122 2> /dev/null | tr -d '\r' | head -n 1)
boots=$(grep -ac '^V: host=' "$st/tier2/hv1.console")
echo "RESULT snapshot save=$save_status restore=$restore_status save_seconds=$t_save restore_seconds=$t_restore before=$before after=$after later=$later first=$first now=$now boots=$boots forward-again=$again out=$(echo "$save $restore" | flat) err=$(cat "$dir/save.err" "$dir/restore.err" | flat)"

# --- down: hv1 first (it depends on jump), each powered off by its button
t_down=$SECONDS
down=$(lab down --timeout 60 2> "$dir/down.err")
t_down=$((SECONDS - t_down))
down_status=$?
left=$(pgrep -f "$st/tier2" | wc -l)
sockets=$(find "$st" -type s | wc -l)
echo "RESULT down seconds=$t_down status=$down_status out=$(echo "$down" | flat) err=$(flat < "$dir/down.err") processes=$left sockets=$sockets"
