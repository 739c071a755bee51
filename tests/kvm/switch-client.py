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


def api(request):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(API)
    s.sendall(json.dumps(request).encode() + b"\n")
    data = b""
    while not data.endswith(b"\n"):
        data += s.recv(1 << 16)
    return json.loads(data)


def set_policy(path, named, pinned=None):
    """A learn port passes a nested guest's MAC; made strict through the
    API, it drops them (counted) while its own MAC passes; learn again, it
    passes them again."""
    vm, other = conn(named), conn(path)
    time.sleep(0.3)
    send(vm, frame(BCAST, D))
    print("learn: nested MAC passed:", recv(other) is not None)
    print("set strict:", api({"command": "set-port", "port": "vm1", "policy": "strict", "mac": A})["ok"])
    for _ in range(7):
        send(vm, frame(BCAST, D))
    print("strict: nested MAC passed:", recv(other, 0.5) is not None)
    send(vm, frame(BCAST, A))
    print("strict: own MAC passed:", recv(other) is not None)
    status(API)
    print("set learn:", api({"command": "set-port", "port": "vm1", "policy": "learn"})["ok"])
    send(vm, frame(BCAST, D))
    print("learn again: nested MAC passed:", recv(other) is not None)
    print("bad policy:", api({"command": "set-port", "port": "vm1", "policy": "open"}))
    print("no such port:", api({"command": "set-port", "port": "nope", "policy": "learn"}))
    if pinned:
        # a strict port without mac= pins the first MAC it sends from; a
        # set-port that names no MAC keeps that pin
        p2 = conn(pinned)
        time.sleep(0.3)
        send(p2, frame(BCAST, C))
        recv(other, 0.5)
        print("set limit:", api({"command": "set-port", "port": "vm2", "mac_limit": 8})["ok"])
        send(p2, frame(BCAST, D))
        print("pinned: other MAC passed:", recv(other, 0.5) is not None)
        send(p2, frame(BCAST, C))
        print("pinned: own MAC passed:", recv(other) is not None)


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


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(">%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def uplink(path, peer_ip, my_ip):
    """A client of a switch whose uplink is a veth device: ARP for the
    Linux host at the other end of the veth pair, then ping it; its
    kernel's answers come back through the uplink."""
    s = conn(path)
    time.sleep(0.3)
    peer, me = socket.inet_aton(peer_ip), socket.inet_aton(my_ip)
    arp = struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1) + mac(A) + me + bytes(6) + peer
    send(s, mac(BCAST) + mac(A) + b"\x08\x06" + arp.ljust(46, b"\0"))
    peer_mac = None
    end = time.time() + 5
    while time.time() < end and not peer_mac:
        got = recv(s, 1)
        if got and got[12:14] == b"\x08\x06" and got[20:22] == b"\x00\x02" and got[28:32] == peer:
            peer_mac = got[22:28]
    print("arp reply:", peer_mac is not None)
    if not peer_mac:
        return
    icmp = struct.pack(">BBHHH", 8, 0, 0, 0x4e56, 1) + b"nestvm-uplink"
    icmp = icmp[:2] + struct.pack(">H", checksum(icmp)) + icmp[4:]
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 1, 0, 64, 1, 0, me, peer)
    ip = ip[:10] + struct.pack(">H", checksum(ip)) + ip[12:]
    send(s, peer_mac + mac(A) + b"\x08\x00" + ip + icmp)
    echoed = False
    end = time.time() + 5
    while time.time() < end and not echoed:
        got = recv(s, 1)
        echoed = bool(got and got[12:14] == b"\x08\x00" and got[23] == 1 and got[34] == 0 and
                      b"nestvm-uplink" in got)
    print("ping reply:", echoed)


def dhcp_packet(client, kind, xid, requested=None, server=None):
    """A DHCP DISCOVER (1) or REQUEST (3) from MAC client, broadcast."""
    opts = bytes([53, 1, kind])
    if requested:
        opts += bytes([50, 4]) + socket.inet_aton(requested)
    if server:
        opts += bytes([54, 4]) + socket.inet_aton(server)
    opts += bytes([12, 6]) + b"node%02d" % (xid % 100) + b"\xff"
    bootp = struct.pack(">BBBBIHH", 1, 1, 6, 0, xid, 0, 0x8000) + bytes(16) + mac(client) + bytes(10)
    bootp += bytes(192) + b"\x63\x82\x53\x63" + opts
    bootp = bootp.ljust(300, b"\0")
    udp = struct.pack(">HHHH", 68, 67, 8 + len(bootp), 0) + bootp
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes(4), b"\xff" * 4)
    csum = sum(struct.unpack(">10H", ip))
    while csum >> 16:
        csum = (csum & 0xFFFF) + (csum >> 16)
    ip = ip[:10] + struct.pack(">H", ~csum & 0xFFFF) + ip[12:]
    return mac(BCAST) + mac(client) + b"\x08\x00" + ip + udp


def dhcp_reply(s, xid):
    """The DHCP reply with this xid: (message type, yiaddr, server), or None."""
    deadline = time.time() + 3
    while time.time() < deadline:
        f = recv(s, 1)
        if f is None or len(f) < 14 + 20 + 8 + 240 or f[12:14] != b"\x08\x00" or f[23] != 17:
            continue
        b = f[14 + 20 + 8 :]
        if struct.unpack(">I", b[4:8])[0] != xid:
            continue
        kind, server, i = None, None, 240
        while i + 1 < len(b) and b[i] != 255:
            if b[i] == 0:
                i += 1
                continue
            code, n = b[i], b[i + 1]
            if code == 53:
                kind = b[i + 2]
            if code == 54:
                server = socket.inet_ntoa(b[i + 2 : i + 6])
            i += 2 + n
        return kind, socket.inet_ntoa(b[16:20]), server
    return None


def dhcp(path, count):
    """count clients (more than libslirp's 16), all behind one port as a
    nested hypervisor's VMs would be, each DISCOVER then REQUEST; then each
    asks again and must get the same address."""
    s = conn(path)
    time.sleep(0.3)
    leases = {}
    for round_ in (1, 2):
        for k in range(count):
            client = "02:00:00:00:%02x:%02x" % (k // 256, k % 256)
            xid = round_ * 1000 + k
            send(s, dhcp_packet(client, 1, xid))
            offer = dhcp_reply(s, xid)
            if not offer or offer[0] != 2:
                print("no offer for", client, offer)
                continue
            send(s, dhcp_packet(client, 3, xid, offer[1], offer[2]))
            ack = dhcp_reply(s, xid)
            if not ack or ack[0] != 5:
                print("no ack for", client, ack)
                continue
            if round_ == 1:
                leases[client] = ack[1]
            elif leases.get(client) != ack[1]:
                print("address changed for", client, leases.get(client), ack[1])
    print("leases:", len(leases), "distinct:", len(set(leases.values())))
    # a REQUEST for an address not its own is refused (NAK, type 6)
    send(s, dhcp_packet("02:00:00:00:00:00", 3, 4242, "169.254.100.250", None))
    nak = dhcp_reply(s, 4242)
    print("request for another address:", nak and nak[0])
    status(API)


def offer(path, client):
    """The address the switch's DHCP offers MAC client (held for it a
    minute; a DISCOVER binds nothing)."""
    s = conn(path)
    time.sleep(0.2)
    send(s, dhcp_packet(client, 1, 777))
    got = dhcp_reply(s, 777)
    print(got[1] if got and got[0] == 2 else "none")


scenario, API = sys.argv[1], sys.argv[2]
if scenario == "offer":
    offer(sys.argv[3], sys.argv[4])
    sys.exit(0)
if scenario == "dhcp":
    dhcp(sys.argv[3], int(sys.argv[4]))
    sys.exit(0)
if scenario == "vxlan":
    vxlan(sys.argv[3], sys.argv[4], sys.argv[5])
    status(API)
    sys.exit(0)
if scenario == "uplink":
    uplink(sys.argv[3], sys.argv[4], sys.argv[5])
    status(API)
    sys.exit(0)
if scenario == "reply":
    reply(sys.argv[3])
if scenario == "forwarding":
    forwarding(sys.argv[3])
elif scenario == "strict":
    strict(sys.argv[3], sys.argv[4])
elif scenario == "set-policy":
    set_policy(sys.argv[3], sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else None)
elif scenario == "hostile":
    hostile(sys.argv[3])
sys.stdout.flush()
