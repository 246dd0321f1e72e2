#!/usr/bin/env python3
"""Readiness probe for a Kafka-protocol broker, standard library only.

Sends a Metadata request (v4, all topics) to HOST:PORT and succeeds once the answer lists at least
the expected number of brokers, i.e. the node serves requests and has joined the cluster's metadata.

    probe.py HOST:PORT [--brokers N] [--timeout SECONDS] [--pid PID]

Exit status 0 when ready; 1 on deadline (or when --pid names a process that has exited).
"""
import argparse
import os
import socket
import struct
import sys
import time


def metadata_brokers(host, port, timeout):
    """One Metadata v4 round trip; returns the list of (node_id, host, port, rack)."""
    client_id = b"strata-probe"
    body = struct.pack(">hhih", 3, 4, 1, len(client_id)) + client_id
    body += struct.pack(">i?", -1, False)  # topics = null (all), allow_auto_topic_creation = false
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _read(s, 4))[0]
        data = _read(s, size)
    pos = 4 + 4  # correlation id, throttle_time_ms
    (count,) = struct.unpack_from(">i", data, pos)
    pos += 4
    brokers = []
    for _ in range(count):
        node_id, hlen = struct.unpack_from(">ih", data, pos)
        pos += 6
        bhost = data[pos:pos + hlen].decode()
        pos += hlen
        bport, rlen = struct.unpack_from(">ih", data, pos)
        pos += 6
        rack = None
        if rlen >= 0:
            rack = data[pos:pos + rlen].decode()
            pos += rlen
        brokers.append((node_id, bhost, bport, rack))
    return brokers


def _read(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("address")
    ap.add_argument("--brokers", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--pid", type=int, action="append", default=[])
    args = ap.parse_args()
    host, port = args.address.rsplit(":", 1)
    deadline = time.monotonic() + args.timeout
    last = "no attempt"
    while True:
        for pid in args.pid:
            if not alive(pid):
                print(f"probe: process {pid} exited before {args.address} was ready", file=sys.stderr)
                return 1
        try:
            brokers = metadata_brokers(host, int(port), 2.0)
            if len(brokers) >= args.brokers:
                return 0
            last = f"{len(brokers)} of {args.brokers} brokers registered"
        except (OSError, struct.error, UnicodeDecodeError) as e:
            last = repr(e)
        if time.monotonic() >= deadline:
            print(f"probe: {args.address} not ready after {args.timeout:.0f}s: {last}", file=sys.stderr)
            return 1
        time.sleep(0.25)  # poll interval of the deadline loop


if __name__ == "__main__":
    sys.exit(main())
