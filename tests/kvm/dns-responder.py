#!/usr/bin/env python3
"""A DNS server for one test: answers every A query on ADDR:PORT with
ANSWER (an IPv4 address), and prints each name it was asked.

    dns-responder.py ADDR PORT ANSWER"""
import socket
import struct
import sys


def main():
    addr, port, answer = sys.argv[1], int(sys.argv[2]), socket.inet_aton(sys.argv[3])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((addr, port))
    print("READY", flush=True)
    while True:
        query, peer = sock.recvfrom(512)
        if len(query) < 12:
            continue
        # the question: labels up to a zero byte, then type and class
        end = 12
        labels = []
        while end < len(query) and query[end]:
            labels.append(query[end + 1 : end + 1 + query[end]].decode(errors="replace"))
            end += 1 + query[end]
        end += 5
        if end > len(query):
            continue
        qtype = struct.unpack(">H", query[end - 4 : end - 2])[0]
        print("QUERY", ".".join(labels), qtype, flush=True)
        header = query[:2] + struct.pack(">HHHHH", 0x8180, 1, 1 if qtype == 1 else 0, 0, 0)
        reply = header + query[12:end]
        if qtype == 1:
            reply += struct.pack(">HHHLH", 0xC00C, 1, 1, 60, 4) + answer
        sock.sendto(reply, peer)


if __name__ == "__main__":
    main()
