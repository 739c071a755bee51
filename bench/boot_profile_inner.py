#!/usr/bin/env python3
"""Runs inside the lab host (bench/boot-profile): boots the same kernel and
initramfs under nestvm and QEMU with initcall_debug, takes the guest's own
kernel log (its init prints dmesg after the marker), and prints where the
boot's time goes per VMM: phases between landmark messages and the initcalls,
with the largest differences between nestvm and the fastest peer first.
  boot_profile_inner.py ROUNDS INITRD [NESTVM_BINARY ...]
Each extra NESTVM_BINARY is profiled as its own column (a before/after run).
"""
import os, re, statistics, sys

from vmmrun import run_to_marker

rounds = int(sys.argv[1])
initrd = sys.argv[2]
nestvms = sys.argv[3:] or ["./nestvm"]
kdir = ".cache/kernels/cloud/boot"
bzimage = next(os.path.join(kdir, f) for f in os.listdir(kdir) if f.startswith("vmlinuz-"))
vmlinux = next(os.path.join(kdir, f) for f in os.listdir(kdir) if f.startswith("vmlinux-"))
MEM_MB = 256
LOGDIR = "build/boot-profile"  # each boot's console output, kept for reading
# quiet keeps the debug lines off the (slow, emulated) serial console: they
# go to the log buffer only, and the guest's init prints it at the end.
CMDLINE = "console=ttyS0 quiet panic=-1 initcall_debug printk.time=1 log_buf_len=1M"
MARKER = b"NESTVM-INIT"
END = b"NESTVM-DMESG-END"

# Landmarks: the first log line matching each, in boot order; a phase is the
# time from one landmark to the next one seen.
LANDMARKS = [
    ("kernel start", r"Linux version"),
    ("memory map", r"BIOS-e820|PVH|e820:"),
    ("ACPI tables", r"ACPI: RSDP|ACPI: Early table"),
    ("tsc calibration", r"tsc: "),
    ("mem init", r"Memory: \d+K/"),
    ("sched/rcu", r"rcu: Hierarchical RCU"),
    ("clocksource/timer", r"APIC: Switch|clocksource: tsc-early|Calibrating delay|lpj="),
    ("smp bringup", r"smp: Bringing up"),
    ("devtmpfs", r"devtmpfs: initialized"),
    ("initcalls start", r"calling  "),
    ("PCI", r"PCI: Using|pci_bus 0000:00"),
    ("Run /init", r"Run /init"),
]

def qemu(machine, kernel):
    return ["qemu-system-x86_64", "-M", machine, "-accel", "kvm", "-cpu", "host",
            "-m", f"{MEM_MB}M", "-smp", "1", "-nodefaults", "-no-user-config",
            "-display", "none", "-serial", "stdio", "-no-reboot",
            "-kernel", kernel, "-initrd", initrd, "-append", CMDLINE]

def nestvm(binary, kernel):
    return [binary, "run", "--kernel", kernel, "--initrd", initrd,
            "--memory", f"{MEM_MB}M", "--cmdline", CMDLINE]

CONFIGS = []
for i, b in enumerate(nestvms):
    tag = "nestvm" if len(nestvms) == 1 else f"nestvm#{i + 1}"
    CONFIGS.append((f"{tag} vmlinux", nestvm(b, vmlinux)))
    CONFIGS.append((f"{tag} bzImage", nestvm(b, bzimage)))
CONFIGS += [("qemu microvm", qemu("microvm", vmlinux)), ("qemu pc", qemu("pc", bzimage))]

LINE = re.compile(r"^\[\s*(\d+\.\d+)\] (.*)$")
INITCALL = re.compile(r"initcall (\S+?)(?:\+0x[0-9a-f]+/0x[0-9a-f]+)?(?: \[\S+\])? returned -?\d+ after (\d+) usecs")

def run_once(cmd):
    wall, out, _ = run_to_marker(cmd, MARKER, until=END, timeout=300)
    return wall, out.decode("utf-8", "replace")

def analyse(log):
    lines = []
    for raw in log.splitlines():
        m = LINE.match(raw.strip("\r"))
        if m:
            lines.append((float(m.group(1)), m.group(2)))
    marks = {}
    for name, pattern in LANDMARKS:
        for ts, text in lines:
            if re.search(pattern, text):
                marks[name] = ts
                break
    initcalls = {}
    for ts, text in lines:
        m = INITCALL.search(text)
        if m:
            initcalls[m.group(1)] = initcalls.get(m.group(1), 0) + int(m.group(2)) / 1e6
    return marks, initcalls

def phases(marks):
    seen = [(marks[n], n) for n, _ in LANDMARKS if n in marks]
    seen.sort()
    out = {}
    for (t0, n0), (t1, _n1) in zip(seen, seen[1:]):
        out[n0] = t1 - t0
    return out

walls = {n: [] for n, _ in CONFIGS}
phase_s = {n: {} for n, _ in CONFIGS}
initcall_s = {n: {} for n, _ in CONFIGS}
kernel_s = {n: [] for n, _ in CONFIGS}
for r in range(rounds):
    for name, cmd in CONFIGS:
        wall, log = run_once(cmd)
        if wall is None:
            print(f"round {r + 1}: {name}: did not reach init", flush=True)
            continue
        os.makedirs(LOGDIR, exist_ok=True)
        with open(os.path.join(LOGDIR, f"{name.replace(' ', '-')}.{r + 1}.log"), "w") as f:
            f.write(log)
        marks, calls = analyse(log)
        walls[name].append(wall)
        if "Run /init" in marks:
            kernel_s[name].append(marks["Run /init"])
        for k, v in phases(marks).items():
            phase_s[name].setdefault(k, []).append(v)
        for k, v in calls.items():
            initcall_s[name].setdefault(k, []).append(v)
        print(f"round {r + 1}: {name:16s} {wall:6.2f} s to init; kernel clock at /init "
              f"{marks.get('Run /init', float('nan')):6.2f} s", flush=True)

def med(v):
    return statistics.median(v) if v else 0.0

names = [n for n, _ in CONFIGS]
w = 14
print()
print("median seconds" + "".join(f"{n:>{w}s}" for n in names))
print(f"{'launch to init':14s}" + "".join(f"{med(walls[n]):{w}.3f}" for n in names))
print(f"{'kernel to init':14s}" + "".join(f"{med(kernel_s[n]):{w}.3f}" for n in names))
print(f"{'before kernel':14s}" + "".join(f"{med(walls[n]) - med(kernel_s[n]):{w}.3f}" for n in names))
print()
print("phases (kernel clock, from the landmark to the next one)")
for p, _ in LANDMARKS[:-1]:
    print(f"  {p:18s}" + "".join(f"{med(phase_s[n].get(p, [])):{w}.3f}" for n in names))
print()
ours = names[0]
peers = [n for n in names if n.startswith("qemu")]
allcalls = set()
for n in names:
    allcalls |= set(initcall_s[n])
def diff(c):
    peer = min(med(initcall_s[p].get(c, [])) for p in peers)
    return med(initcall_s[ours].get(c, [])) - peer
top = sorted(allcalls, key=lambda c: -max(med(initcall_s[n].get(c, [])) for n in names))[:25]
print(f"initcalls taking longest (median s; difference: {ours} minus the faster QEMU)")
print(f"  {'initcall':32s}" + "".join(f"{n:>{w}s}" for n in names) + f"{'difference':>{w}s}")
for c in sorted(top, key=lambda c: -diff(c)):
    print(f"  {c[:32]:32s}" + "".join(f"{med(initcall_s[n].get(c, [])):{w}.3f}" for n in names)
          + f"{diff(c):{w}.3f}")
total = {n: sum(med(v) for v in initcall_s[n].values()) for n in names}
print(f"  {'all initcalls':32s}" + "".join(f"{total[n]:{w}.3f}" for n in names))
