#!/usr/bin/env python3
"""Raw frame clients for `nestvm switch` (QEMU's stream framing: a 4-byte
big-endian length, then the frame). Each scenario prints what it saw, one
fact per line, for tests/kvm/switch.bats to check.
  switch-client.py SCENARIO API-SOCKET SOCKET [NAMED-SOCKET]
Before its clients leave, a scenario prints the switch's status (asked on
its API socket as `nestvm ctl` would) as a line "STATUS {json}"."""
import json
import socket
import struct
import sys
import time

A, B, C, D = "52:54:00:00:00:0a", "52:54:00:00:00:0b", "52:54:00:00:00:0c", "52:54:00:00:00:0d"
BCAST = "ff:ff:ff:ff:ff:ff"


def conn(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.settimeout(2)
    return s


def mac(text):
    return bytes.fromhex(text.replace(":", ""))


def frame(dst, src, payload=b"nestvm", vlan=None):
    tag = struct.pack(">HH", 0x8100, vlan) if vlan is not None else b""
    return mac(dst) + mac(src) + tag + b"\x08\x00" + payload.ljust(46, b"\0")


def send(s, f):
    s.sendall(struct.pack(">I", len(f)) + f)


def recv(s, timeout=2.0):
    s.settimeout(timeout)
    try:
        head = b""
        while len(head) < 4:
            chunk = s.recv(4 - len(head))
            if not chunk:
                return None
            head += chunk
        n = struct.unpack(">I", head)[0]
        data = b""
        while len(data) < n:
            data += s.recv(n - len(data))
        return data
    except socket.timeout:
        return None


def status(api):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(api)
    s.sendall(b'{"command": "status"}\n')
    data = b""
    while not data.endswith(b"\n"):
        data += s.recv(1 << 16)
    print("STATUS", json.dumps(json.loads(data)))


def forwarding(path):
    a, b, c = conn(path), conn(path), conn(path)
    time.sleep(0.3)
    send(a, frame(BCAST, A))
    print("broadcast reached b:", recv(b) is not None, "c:", recv(c) is not None)
    send(b, frame(A, B, b"to-a"))
    got = recv(a)
    print("unicast reached a:", got is not None and b"to-a" in got)
    print("unicast reached c:", recv(c, 0.5) is not None)
    send(c, frame(B, C, b"to-b"))
    print("unicast reached b:", (recv(b) or b"").find(b"to-b") > 0)
    # a 9000-byte MTU frame
    send(a, frame(BCAST, A, b"j" * 9000))
    big = recv(b)
    print("jumbo frame bytes:", len(big) if big else 0)
    status(API)


def strict(path, named):
    vm, other = conn(named), conn(path)
    time.sleep(0.3)
    send(vm, frame(BCAST, A))
    print("own MAC passed:", recv(other) is not None)
    for _ in range(5):
        send(vm, frame(BCAST, D))  # a nested guest's MAC: not allowed here
    print("spoofed passed:", recv(other, 0.5) is not None)
    status(API)


def hostile(path):
    good1, good2, bad, deaf = conn(path), conn(path), conn(path), conn(path)
    time.sleep(0.3)
    bad.sendall(b"\x7f\xff\xff\xffgarbage")
    time.sleep(0.3)
    try:
        bad.settimeout(1)
        closed = bad.recv(1) == b""
    except OSError:
        closed = True
    print("garbage framing disconnected:", closed)
    # deaf never reads; 4000 broadcasts of 1500 bytes (6 MB) cannot all be
    # queued for it, and the others still get theirs.
    deaf.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    got = 0
    good2.setblocking(False)
    buf = b""
    for i in range(4000):
        send(good1, frame(BCAST, A, b"x" * 1400))
        try:
            while True:
                chunk = good2.recv(1 << 20)
                if not chunk:
                    break
                buf += chunk
        except BlockingIOError:
            pass
        while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
            n = struct.unpack(">I", buf[:4])[0]
            buf = buf[4 + n:]
            got += 1
    deadline = time.time() + 10
    good2.setblocking(True)
    good2.settimeout(1)
    while got < 4000 and time.time() < deadline:
        try:
            chunk = good2.recv(1 << 20)
        except socket.timeout:
            break
        buf += chunk
        while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
            n = struct.unpack(">I", buf[:4])[0]
            buf = buf[4 + n:]
            got += 1
    print("reader got:", got)
    status(API)


def reply(path):
    """Waits for the test guest's hello (ethertype 0x88b5), answers it."""
    s = conn(path)
    deadline = time.time() + 60
    while time.time() < deadline:
        f = recv(s, 5)
        if f is None or len(f) < 14 or f[12:14] != b"\x88\xb5":
            continue
        text = f[14:].split(b"\0")[0].decode()
        src = ":".join("%02x" % b for b in f[6:12])
        print("client got '%s' from %s" % (text, src), flush=True)
        answer = f[6:12] + mac("52:54:00:00:00:99") + b"\x88\xb5" + b"nestvm tier-1 reply".ljust(46, b"\0")
        send(s, answer)
        time.sleep(1)
        return
    print("client got nothing")


def vxlan(path_a, path_b, vxlan_port_b):
    """Clients on two switches joined over VXLAN exchange frames; a packet
    of another VNI sent to switch B is not delivered."""
    a, b = conn(path_a), conn(path_b)
    time.sleep(0.3)
    send(a, frame(BCAST, A, b"over-vxlan"))
    got = recv(b)
    print("broadcast crossed:", got is not None and b"over-vxlan" in got)
    send(b, frame(A, B, b"back"))
    got = recv(a)
    print("unicast came back:", got is not None and b"back" in got)
    # another segment's packet, straight to switch B's VXLAN socket
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hdr = bytes([0x08, 0, 0, 0, 0, 0, 7, 0])  # VNI 7
    u.sendto(hdr + frame(BCAST, C, b"wrong-vni"), ("127.0.0.1", int(vxlan_port_b)))
    print("other VNI delivered:", recv(b, 1) is not None)


scenario, API = sys.argv[1], sys.argv[2]
if scenario == "vxlan":
    vxlan(sys.argv[3], sys.argv[4], sys.argv[5])
    status(API)
    sys.exit(0)
if scenario == "reply":
    reply(sys.argv[3])
if scenario == "forwarding":
    forwarding(sys.argv[3])
elif scenario == "strict":
    strict(sys.argv[3], sys.argv[4])
elif scenario == "hostile":
    hostile(sys.argv[3])
sys.stdout.flush()
