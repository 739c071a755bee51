#!/usr/bin/env python3
"""Runs inside the lab host (bench/boot): boots the same kernel, initramfs,
memory and command line under nestvm, QEMU and kvmtool, interleaved, and
reports the time from launching the VMM to the guest init's first line, the
VMM's own memory (peak RSS minus the resident part of the guest-RAM
mapping), and nestvm's own startup (main() to the first KVM_RUN, its -v
line).
  boot_inner.py ROUNDS INITRD [LKVM]"""
import os, re, statistics, sys, tempfile

from vmmrun import run_to_marker

rounds = int(sys.argv[1])
initrd = sys.argv[2]
lkvm = sys.argv[3] if len(sys.argv) > 3 else None
kdir = ".cache/kernels/cloud/boot"
bzimage = next(os.path.join(kdir, f) for f in os.listdir(kdir) if f.startswith("vmlinuz-"))
vmlinux = next(os.path.join(kdir, f) for f in os.listdir(kdir) if f.startswith("vmlinux-"))
MEM_MB = 256
CMDLINE = "console=ttyS0 quiet panic=-1"
MARKER = b"NESTVM-INIT"

def qemu(machine, kernel):
    return ["qemu-system-x86_64", "-M", machine, "-accel", "kvm", "-cpu", "host",
            "-m", f"{MEM_MB}M", "-smp", "1", "-nodefaults", "-no-user-config",
            "-display", "none", "-serial", "stdio", "-no-reboot",
            "-kernel", kernel, "-initrd", initrd, "-append", CMDLINE]

def nestvm(kernel):
    return ["./nestvm", "run", "-v", "--kernel", kernel, "--initrd", initrd,
            "--memory", f"{MEM_MB}M", "--cmdline", CMDLINE]

def kvmtool(kernel):
    # kvmtool adds its own console=ttyS0 and legacy-device switches.
    return [lkvm, "run", "--kernel", kernel, "--initrd", initrd, "--mem", str(MEM_MB),
            "--cpus", "1", "--params", CMDLINE]

CONFIGS = [
    ("nestvm vmlinux", nestvm(vmlinux)),
    ("qemu microvm vmlinux", qemu("microvm", vmlinux)),
    ("nestvm bzImage", nestvm(bzimage)),
    ("qemu pc bzImage", qemu("pc", bzimage)),
]
if lkvm:
    CONFIGS.append(("kvmtool bzImage", kvmtool(bzimage)))

def own_memory_kb(pid):
    """VmHWM minus the Rss of the largest mapping at least as big as guest RAM."""
    hwm = int(re.search(rb"VmHWM:\s+(\d+)", open(f"/proc/{pid}/status", "rb").read()).group(1))
    guest_rss, best = 0, None
    size = rss = None
    for line in open(f"/proc/{pid}/smaps", "rb"):
        if re.match(rb"^[0-9a-f]+-[0-9a-f]+ ", line):
            size = rss = None
        elif line.startswith(b"Size:"):
            size = int(line.split()[1])
        elif line.startswith(b"Rss:"):
            rss = int(line.split()[1])
            if size and size >= MEM_MB * 1024 and (best is None or size < best):
                best, guest_rss = size, rss
    return hwm - guest_rss

STARTUP = re.compile(rb"startup: ([0-9.]+) ms from main\(\) to the first KVM_RUN")

def run_once(cmd):
    err = tempfile.TemporaryFile()
    # Memory is taken when the guest init's line is out: RAM for the boot is touched.
    elapsed, _, mem = run_to_marker(cmd, MARKER, on_marker=own_memory_kb, stderr=err)
    err.seek(0)
    m = STARTUP.search(err.read())
    return elapsed, mem, float(m.group(1)) if m else None

results = {name: ([], []) for name, _ in CONFIGS}
startup_ms = {name: [] for name, _ in CONFIGS}
for r in range(rounds):
    for name, cmd in CONFIGS:
        t, m, su = run_once(cmd)
        print(f"round {r + 1}: {name:22s} " + (f"{t:6.2f} s to init, own memory {m / 1024:6.1f} MiB"
              if t is not None else "did not reach init in 120 s")
              + (f", startup {su:.1f} ms" if su is not None else ""), flush=True)
        if t is not None:
            results[name][0].append(t)
            results[name][1].append(m)
        if su is not None:
            startup_ms[name].append(su)

def med(v):
    return statistics.median(v) if v else float("nan")

print()
print(f"{'VMM':22s} {'time to init (median)':>22s} {'own memory (median)':>20s}")
for name, _ in CONFIGS:
    t, m = results[name]
    print(f"{name:22s} {med(t):20.2f} s {med(m) / 1024:17.1f} MiB   ({len(t)}/{rounds} runs)")
for name, _ in CONFIGS:
    if startup_ms[name]:
        print(f"{name}: startup, main() to the first KVM_RUN (median): {med(startup_ms[name]):.1f} ms")
print()
for ours, peer in (("nestvm vmlinux", "qemu microvm vmlinux"), ("nestvm bzImage", "qemu pc bzImage")):
    print(f"ratio {ours} / {peer}: time {med(results[ours][0]) / med(results[peer][0]):.2f}, "
          f"own memory {med(results[ours][1]) / med(results[peer][1]):.3f}")
fastest_qemu = min(med(results["qemu microvm vmlinux"][0]), med(results["qemu pc bzImage"][0]))
fastest_ours = min(med(results["nestvm vmlinux"][0]), med(results["nestvm bzImage"][0]))
print(f"ratio fastest nestvm / fastest QEMU: time {fastest_ours / fastest_qemu:.2f} (target <= 0.5)")
if lkvm:
    kt = med(results["kvmtool bzImage"][0])
    print(f"ratio nestvm bzImage / kvmtool bzImage: time {med(results['nestvm bzImage'][0]) / kt:.2f}")
    print(f"ratio fastest nestvm / kvmtool: time {fastest_ours / kt:.2f} (target <= 0.7)")
else:
    print("SKIP kvmtool: not built (see bench/boot's message above)")
