#!/usr/bin/env python3
"""Accepts one TCP connection on PORT and writes everything it receives to
FILE until the peer closes. (busybox nc -l closes the connection as soon as
its own stdin ends, cutting transfers short.)
    tcp-sink.py PORT FILE"""
import socket
import sys

port, path = int(sys.argv[1]), sys.argv[2]
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", port))
server.listen(1)
conn, _ = server.accept()
with open(path, "wb") as out:
    while True:
        data = conn.recv(1 << 20)
        if not data:
            break
        out.write(data)
