#!/usr/bin/env python3
"""CPU per small message through an asyncssh unix-socket forward, per cipher: what an idle
console pays for each libvirt keepalive probe and its answer. Prints figures; asserts nothing.

    .venv/bin/python tests/bench/bench_forward.py [--rounds 3000]

A throwaway OpenSSH sshd on 127.0.0.1 (tests/fixtures_real.py) and a unix echo server stand in
for a hypervisor's sshd and libvirtd; the client forwards a local socket to the echo socket
(HostLink.forward_unix's route) and sends ``--rounds`` 28-byte messages one at a time (libvirt's
keepalive message is 28 bytes), each waiting for its echo. The figure is this process's CPU
(the I/O loop thread and the sender) per round trip, for each encryption algorithm sshd and
asyncssh both offer; sshd's own CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import asyncssh  # noqa: E402

from fixtures_real import start_sshd, stop_pid  # noqa: E402

ALGS = ("chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
        "aes128-ctr")


def echo_server(path: str) -> None:
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(4)

    def serve(c: socket.socket) -> None:
        while data := c.recv(4096):
            c.sendall(data)

    def accept() -> None:
        while True:
            c, _ = srv.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()
    threading.Thread(target=accept, daemon=True).start()


async def one(sshd, alg: str, echo: str, rounds: int) -> float:
    conn = await asyncssh.connect(sshd.address, sshd.port, username=sshd.user,
                                  client_keys=[str(sshd.client_key)],
                                  known_hosts=str(sshd.known_hosts), encryption_algs=[alg],
                                  config=None)
    local = os.path.join(tempfile.mkdtemp(), "fwd.sock")
    listener = await conn.forward_local_path(local, echo)
    reader, writer = await asyncio.open_unix_connection(local)
    msg = b"k" * 28
    for _ in range(50):                 # warm up
        writer.write(msg)
        await reader.readexactly(28)
    c0 = time.process_time()
    for _ in range(rounds):
        writer.write(msg)
        await reader.readexactly(28)
    cpu = time.process_time() - c0
    writer.close()
    listener.close()
    conn.close()
    await conn.wait_closed()
    return cpu / rounds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3000)
    args = ap.parse_args()
    d = Path(tempfile.mkdtemp(prefix="vdfwd-"))
    sshd = start_sshd(d / "sshd")
    echo = str(d / "echo.sock")
    echo_server(echo)
    try:
        for alg in ALGS:
            try:
                per = asyncio.run(one(sshd, alg, echo, args.rounds))
            except (asyncssh.Error, OSError) as exc:
                print(f"{alg}: not negotiated ({exc})")
                continue
            print(f"{alg:32s} {per * 1e6:6.0f} µs CPU per 28-byte round trip "
                  f"({args.rounds} rounds; load {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        stop_pid(sshd.pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
