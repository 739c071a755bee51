#!/usr/bin/env python3
"""Runs inside the lab host for bench/snapshot: prints the table."""
import glob, json, os, shutil, socket, statistics, subprocess, sys, time

work, rounds = sys.argv[1], int(sys.argv[2])
kernel = glob.glob(".cache/kernels/cloud/boot/vmlinuz-*")[0]
initrd = os.path.join(work, "initrd.cpio")
cmdline = "console=ttyS0 quiet panic=-1"
tmp = "/tmp/bench-snapshot"


def wait_line(path, text, timeout=600):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with open(path, "rb") as f:
                if text.encode() in f.read():
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {text!r} in {path}")


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            total += os.stat(os.path.join(root, name)).st_blocks * 512
    return total if os.path.isdir(path) else os.stat(path).st_blocks * 512


def nestvm_round():
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    sock, out = f"{tmp}/api.sock", f"{tmp}/console"
    vm = subprocess.Popen(["./nestvm", "run", "--kernel", kernel, "--initrd", initrd,
                           "--memory", "1G", "--cmdline", cmdline, "--api-socket", sock,
                           "--console", f"file:{out}"], stdin=subprocess.DEVNULL)
    wait_line(out, "BENCH filled")
    t0 = time.monotonic()
    subprocess.run(["./nestvm", "ctl", sock, "snapshot", f"{tmp}/snap"], check=True,
                   stdout=subprocess.DEVNULL)
    save = time.monotonic() - t0
    vm.kill()
    vm.wait()
    subprocess.run(["sync"])
    t0 = time.monotonic()
    vm = subprocess.Popen(["./nestvm", "restore", f"{tmp}/snap", "--api-socket", sock,
                           "--console", f"file:{out}.2"], stdin=subprocess.DEVNULL)
    while subprocess.run(["./nestvm", "ctl", sock, "status"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL).returncode != 0:
        time.sleep(0.01)
    restore = time.monotonic() - t0
    wait_line(f"{out}.2", "alive", 60)  # and it runs
    vm.kill()
    vm.wait()
    return save, restore, du(f"{tmp}/snap")


class QMP:
    def __init__(self, path):
        for _ in range(600):
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                time.sleep(0.01)
        self.f = self.s.makefile("rwb")
        self.f.readline()
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
        self.f.flush()
        while True:
            reply = json.loads(self.f.readline())
            if "return" in reply or "error" in reply:
                return reply


def qemu(extra, qmp, out):
    return subprocess.Popen(["qemu-system-x86_64", "-M", "pc", "-accel", "kvm", "-cpu", "host",
                             "-m", "1G", "-nodefaults", "-display", "none", "-kernel", kernel,
                             "-initrd", initrd, "-append", cmdline, "-serial", f"file:{out}",
                             "-qmp", f"unix:{qmp},server=on,wait=off"] + extra,
                            stdin=subprocess.DEVNULL)


def qemu_round():
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    qmp, out, image = f"{tmp}/qmp.sock", f"{tmp}/console", f"{tmp}/migration"
    vm = qemu([], qmp, out)
    wait_line(out, "BENCH filled")
    q = QMP(qmp)
    t0 = time.monotonic()
    q.cmd("stop")
    q.cmd("migrate", uri=f"exec:cat > {image}")
    while q.cmd("query-migrate")["return"].get("status") not in ("completed", "failed"):
        time.sleep(0.01)
    save = time.monotonic() - t0
    vm.kill()
    vm.wait()
    subprocess.run(["sync"])
    t0 = time.monotonic()
    vm = qemu(["-incoming", f"exec:cat {image}"], qmp, f"{out}.2")
    q = QMP(qmp)
    # The source was stopped, so the loaded VM waits paused: let it go on.
    while q.cmd("query-status")["return"].get("status") == "inmigrate":
        time.sleep(0.01)
    q.cmd("cont")
    restore = time.monotonic() - t0
    wait_line(f"{out}.2", "alive", 60)
    vm.kill()
    vm.wait()
    return save, restore, du(image)


results = {"nestvm": [], "qemu": []}
for _ in range(rounds):
    results["nestvm"].append(nestvm_round())
    results["qemu"].append(qemu_round())
shutil.rmtree(tmp, ignore_errors=True)
print(f"1 GiB guest, 200 MiB in use; medians of {rounds} runs (lower is better)")
print(f"  {'':14s} {'nestvm':>10s} {'QEMU':>10s} {'nestvm/QEMU':>12s}")
for i, (name, unit, scale) in enumerate((("save", "s", 1), ("restore", "s", 1),
                                         ("size", "MiB", 1 / 1048576))):
    a = statistics.median(r[i] for r in results["nestvm"]) * scale
    b = statistics.median(r[i] for r in results["qemu"]) * scale
    print(f"  {name + ' (' + unit + ')':14s} {a:10.2f} {b:10.2f} {a / b:12.2f}")
