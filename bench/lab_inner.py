#!/usr/bin/env python3
"""Runs inside the lab host (bench/lab): N nodes up with `nestvm lab up`
against a shell-script-like start of N QEMU processes, for N in 1, 2, 4,
interleaved; time until every node is up, per-node marginal cost, and each
idle node's memory beyond its guest RAM."""
import json, os, re, signal, statistics, subprocess, sys, time

rounds = int(sys.argv[1])
work = sys.argv[2]
initrd = os.path.join(work, "initrd.cpio")
kdir = ".cache/kernels/cloud/boot"
kernel = os.path.abspath(next(os.path.join(kdir, f) for f in os.listdir(kdir) if f.startswith("vmlinuz-")))
MEM_MB = 256
CMDLINE = "console=ttyS0 quiet panic=-1"
MARKER = b"LAB-NODE-READY"
COUNTS = (1, 2, 4)
state = "/tmp/bench-lab-state"  # the lab host's own file system

def own_memory_kb(pid):
    """Rss now, minus the Rss of the smallest mapping at least as big as guest RAM."""
    rss_total = int(re.search(rb"VmRSS:\s+(\d+)", open(f"/proc/{pid}/status", "rb").read()).group(1))
    guest, best, size = 0, None, None
    for line in open(f"/proc/{pid}/smaps", "rb"):
        if re.match(rb"^[0-9a-f]+-[0-9a-f]+ ", line):
            size = None
        elif line.startswith(b"Size:"):
            size = int(line.split()[1])
        elif line.startswith(b"Rss:") and size and size >= MEM_MB * 1024 and (best is None or size < best):
            best, guest = size, int(line.split()[1])
    return rss_total - guest

def rss_kb(pid):
    return int(re.search(rb"VmRSS:\s+(\d+)", open(f"/proc/{pid}/status", "rb").read()).group(1))

def nestvm_lab(n):
    path = os.path.join(work, f"lab{n}.yaml")
    with open(path, "w") as f:
        f.write(f"name: bench{n}\ntemplates:\n  node: {{kernel: {kernel}, initrd: {os.path.abspath(initrd)}, "
                f"cmdline: \"{CMDLINE}\"}}\nnetworks:\n  lan: {{nat: 169.254.95.0/24}}\nnodes:\n"
                f"  n[1-{n}]: {{template: node, memory: {MEM_MB}M, nics: [{{network: lan}}], "
                f"health: {{console: \"{MARKER.decode()}\"}}}}\n")
    lab = ["./nestvm", "lab"]
    opts = [path, "--state-dir", state]
    start = time.monotonic()
    r = subprocess.run(lab + ["up"] + opts, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.monotonic() - start
    if r.returncode != 0:
        print("nestvm lab up failed:", r.stderr.decode().strip(), flush=True)
        elapsed = None
    time.sleep(2)  # idle
    st = json.loads(subprocess.run(lab + ["status", "--json"] + opts, capture_output=True).stdout)
    mems = [own_memory_kb(n["pid"]) for n in st["nodes"] if n.get("pid")]
    # the network's switch alone (the nodes' command lines name its socket too)
    switch = subprocess.run(["pgrep", "-f", f"switch --api-socket {state}/bench{n}/lan.switch-api"],
                            capture_output=True).stdout.split()
    sw = sum(rss_kb(int(p)) for p in switch)
    subprocess.run(lab + ["down", "--timeout", "2"] + opts, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return elapsed, statistics.mean(mems) if mems else None, sw

def qemu_script(n):
    procs, logs = [], []
    start = time.monotonic()
    for i in range(n):
        log = os.path.join(state, f"qemu{i}.log")
        open(log, "w").close()
        logs.append(log)
        procs.append(subprocess.Popen(
            ["qemu-system-x86_64", "-M", "pc", "-accel", "kvm", "-cpu", "host", "-m", f"{MEM_MB}M",
             "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none",
             "-serial", f"file:{log}", "-kernel", kernel, "-initrd", initrd, "-append", CMDLINE,
             "-netdev", f"user,id=n0,net=169.254.96.0/24", "-device", "virtio-net-pci,netdev=n0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    elapsed, deadline = None, start + 300
    while time.monotonic() < deadline:
        if all(MARKER in open(l, "rb").read() for l in logs):
            elapsed = time.monotonic() - start
            break
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.05)
    time.sleep(2)
    mems = [own_memory_kb(p.pid) for p in procs if p.poll() is None]
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait()
    return elapsed, statistics.mean(mems) if mems else None, 0

os.makedirs(state, exist_ok=True)
res = {(tool, n): ([], [], []) for tool in ("nestvm", "qemu") for n in COUNTS}
for r in range(rounds):
    for n in COUNTS:
        for tool, fn in (("nestvm", nestvm_lab), ("qemu", qemu_script)):
            t, m, sw = fn(n)
            print(f"round {r + 1}: {tool:6s} {n} node(s): " +
                  (f"{t:6.2f} s to all up, {m / 1024:6.1f} MiB per idle node beyond guest RAM"
                   + (f", switch {sw / 1024:.1f} MiB" if tool == "nestvm" else "")
                   if t is not None and m is not None else "failed"), flush=True)
            if t is not None and m is not None:
                res[(tool, n)][0].append(t)
                res[(tool, n)][1].append(m)
                res[(tool, n)][2].append(sw)

def med(v):
    return statistics.median(v) if v else float("nan")

print()
print(f"{'nodes':>5s} {'nestvm up (s)':>14s} {'QEMU script (s)':>16s} {'ratio':>6s} "
      f"{'nestvm MiB/node':>16s} {'QEMU MiB/node':>14s} {'ratio':>6s} {'switch MiB':>10s}")
for n in COUNTS:
    a, b = res[("nestvm", n)], res[("qemu", n)]
    print(f"{n:5d} {med(a[0]):14.2f} {med(b[0]):16.2f} {med(a[0]) / med(b[0]):6.2f} "
          f"{med(a[1]) / 1024:16.1f} {med(b[1]) / 1024:14.1f} {med(a[1]) / med(b[1]):6.2f} "
          f"{med(a[2]) / 1024:10.1f}")
hi, lo = COUNTS[-1], COUNTS[0]
for tool in ("nestvm", "qemu"):
    m = (med(res[(tool, hi)][0]) - med(res[(tool, lo)][0])) / (hi - lo)
    print(f"{tool}: marginal time per node ({lo} to {hi} nodes): {m:.2f} s")
