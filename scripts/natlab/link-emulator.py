#!/usr/bin/env python3
"""natlab link emulator: netem in userspace, for kernels built without sch_netem.

Forwards Ethernet frames between two interfaces (AF_PACKET, both directions), dropping
loss_pct percent of them and delivering the rest after delay_ms (+ uniform jitter_ms) and,
with rate_mbit, after their serialisation time on a link of that rate. Node has no AF_PACKET,
and python3 is present wherever pinhole builds (node-gyp needs it).

usage: link-emulator.py IF_A IF_B '{"lossPct":10,"delayMs":20,"jitterMs":0,"rateMbit":0}'
Each line on stdin is a new JSON settings object (applies to frames received from then on).
Prints "ready" once both sockets are bound; exits when stdin closes or on SIGTERM.
"""
import heapq
import json
import os
import random
import select
import socket
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23  # Linux >= 4.20: do not read back what we send
PACKET_OUTGOING = 4
# veths hand over GSO super-frames (up to 64 KiB); with a virtio-net header in front of each
# frame the kernel passes their segmentation/checksum offload state through instead of failing.
PACKET_VNET_HDR = 15
RECV_MAX = 256 * 1024
MAX_QUEUE = 100000  # frames in flight, like netem's limit


def open_if(name):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    except OSError:
        pass  # older kernel: outgoing frames are filtered by pkttype below
    s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((name, 0))
    s.setblocking(False)
    return s


def parse(line):
    cfg = json.loads(line)
    return {k: float(cfg.get(k) or 0) for k in ("lossPct", "delayMs", "jitterMs", "rateMbit")}


def main():
    if_a, if_b, initial = sys.argv[1], sys.argv[2], sys.argv[3]
    cfg = parse(initial)
    a, b = open_if(if_a), open_if(if_b)
    peer = {a.fileno(): b, b.fileno(): a}
    busy_until = {a.fileno(): 0.0, b.fileno(): 0.0}  # per direction, for the rate limit
    queue = []  # (due, seq, out_socket, frame)
    seq = 0
    stdin = sys.stdin.fileno()
    print("ready", flush=True)
    while True:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else None
        readable, _, _ = select.select([a, b, stdin], [], [], timeout)
        now = time.monotonic()
        for r in readable:
            if r == stdin:
                line = os.read(stdin, 65536)
                if not line:
                    return
                for l in line.decode().splitlines():
                    if l.strip():
                        cfg = parse(l)
                continue
            for _ in range(64):  # drain a burst per wakeup
                try:
                    frame, addr = r.recvfrom(RECV_MAX)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue
                if cfg["lossPct"] and random.random() * 100 < cfg["lossPct"]:
                    continue
                if len(queue) >= MAX_QUEUE:
                    continue
                due = now
                if cfg["rateMbit"]:
                    start = max(now, busy_until[r.fileno()])
                    busy_until[r.fileno()] = start + len(frame) * 8 / (cfg["rateMbit"] * 1e6)
                    due = busy_until[r.fileno()]
                due += cfg["delayMs"] / 1000.0
                if cfg["jitterMs"]:
                    due += random.uniform(-cfg["jitterMs"], cfg["jitterMs"]) / 1000.0
                seq += 1
                heapq.heappush(queue, (due, seq, peer[r.fileno()], frame))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, out, frame = heapq.heappop(queue)
            try:
                out.send(frame)
            except OSError:
                pass  # e.g. ENOBUFS: the frame is lost, as on a real link


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
