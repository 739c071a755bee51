#!/usr/bin/env python3
"""Writes seed inputs for fuzz_virtqueue_net (see its header for the
encoding): a transmit chain and a receive buffer, with and without
EVENT_IDX and indirect descriptors, and a frame waiting on the tap."""
import os
import struct
import sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus/virtqueue_net")
os.makedirs(out, exist_ok=True)

VERSION_1, EVENT_IDX = 1 << 32, 1 << 29
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4


def desc(addr, length, flags, nxt=0):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def seed(name, features, indirect=False):
    mem = bytearray(0x5000 + 128)
    frame = bytes(12) + bytes.fromhex("ffffffffffff525400000001" "0800") + bytes(46)
    # RX: one 2 KiB writable buffer
    mem[0x1000:0x1010] = desc(0x4000, 2048, F_WRITE)
    mem[0x1400:0x1406] = struct.pack("<HHH", 0, 1, 0)
    # TX: header and frame, chained or through an indirect table
    mem[0x5000:0x5000 + len(frame)] = frame
    if indirect:
        mem[0x3000:0x3020] = desc(0x5000, 12, F_NEXT, 1) + desc(0x500c, len(frame) - 12, 0)
        mem[0x2000:0x2010] = desc(0x3000, 32, F_INDIRECT)
    else:
        mem[0x2000:0x2010] = desc(0x5000, len(frame), 0)
    mem[0x2400:0x2406] = struct.pack("<HHH", 0, 1, 0)
    incoming = bytes(12) + bytes.fromhex("525400000001" "525400000002" "0806") + bytes(46)
    head = struct.pack("<HQB", 3 | 3 << 8, features, 1) + struct.pack("<H", len(incoming)) + incoming
    with open(os.path.join(out, name), "wb") as f:
        f.write(head + bytes(mem))


seed("plain", VERSION_1)
seed("event-idx", VERSION_1 | EVENT_IDX)
seed("indirect", VERSION_1 | (1 << 28), indirect=True)
