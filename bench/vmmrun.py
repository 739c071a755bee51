"""Shared by the boot benchmarks: launch a VMM, time its guest's marker line."""
import os, subprocess, time

def run_to_marker(cmd, marker, until=None, timeout=120, on_marker=None, stderr=subprocess.DEVNULL):
    """Runs cmd with its stdout read as it comes. Returns (seconds from launch
    to marker, or None; everything read; on_marker(pid)'s result, called
    while the VMM still runs). Reads on until `until` is seen (default: the
    marker itself), the VMM exits or timeout passes, then waits for it to end."""
    until = until or marker
    start = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
    os.set_blocking(p.stdout.fileno(), False)
    buf, elapsed, seen = b"", None, None
    deadline = start + timeout
    while time.monotonic() < deadline and until not in buf:
        try:
            chunk = p.stdout.read()
        except BlockingIOError:
            chunk = None
        if chunk:
            buf += chunk
            if elapsed is None and marker in buf:
                elapsed = time.monotonic() - start
                if on_marker:
                    seen = on_marker(p.pid)
        elif p.poll() is not None:
            break
        else:
            time.sleep(0.002)  # the resolution of the launch-to-marker time
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    return elapsed, buf, seen
