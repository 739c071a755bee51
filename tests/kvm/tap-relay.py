#!/usr/bin/env python3
"""Joins a tap device to a switch port: a Linux network stack (in a network
namespace, say) becomes a client of nestvm switch, with real DHCP, TCP and
UDP. Frames move between the tap and the port socket in QEMU's stream
framing (a 4-byte big-endian length, then the frame).

    tap-relay.py TAPNAME SWITCH-SOCKET

Prints READY once the tap exists and the socket is connected; runs until
either side closes."""
import errno
import fcntl
import os
import select
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000


def main():
    name, path = sys.argv[1], sys.argv[2]
    tap = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tap, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    print("READY", flush=True)
    pending = b""
    while True:
        ready, _, _ = select.select([tap, sock], [], [])
        if tap in ready:
            frame = os.read(tap, 65536)
            sock.sendall(struct.pack(">I", len(frame)) + frame)
        if sock in ready:
            data = sock.recv(1 << 20)
            if not data:
                return
            pending += data
            while len(pending) >= 4:
                (length,) = struct.unpack(">I", pending[:4])
                if len(pending) < 4 + length:
                    break
                try:
                    os.write(tap, pending[4 : 4 + length])
                except OSError as e:
                    # A tap that is not up yet refuses frames with EIO; a
                    # NIC whose link is down drops them too. (Frames
                    # flooded from other clients arrive as soon as this
                    # port is connected, before the test brings tap0 up.)
                    if e.errno != errno.EIO:
                        raise
                pending = pending[4 + length :]


if __name__ == "__main__":
    try:
        main()
    except (BrokenPipeError, ConnectionResetError, KeyboardInterrupt):
        pass
