#!/usr/bin/env python3
"""Idle cost of the console with nothing changing, this tree against another: CPU of the
console and of each libvirtd, the console's wakeups and read/write syscalls. Prints figures
with the load beside them; asserts nothing. Never on the shared lab:

    .venv/bin/virtdeck lab sandbox -- bash -c '.venv/bin/virtdeck lab up -n 3 --ovn standalone &&
        .venv/bin/python tests/bench/bench_idle.py --idle 60 --old DIR; .venv/bin/virtdeck lab down'

For each tree in turn (``--rounds`` times, alternating): the console (``--readonly``) starts in
a tmux pane (160x48), waits until every host and the NB are up, settles ``--settle`` s, then
for ``--idle`` s nothing changes while this script reads /proc: the console's CPU (user +
system, % of one core), its context switches per second summed over its threads (each is one
wakeup of a thread: the I/O loop, libvirt's event loop, Textual's input and timers, the
stats poll), its read/write syscalls per second (/proc/PID/io), the busiest threads by CPU
and wakeups (tid), and each libvirtd's CPU. ``--aliases K`` lists each hypervisor under K
names (K connections to each libvirtd), as bench_startup.py does for 16 connections on 4 hosts.
``--per-host N`` defines N shut-off ``vdbench-*`` domains per host first (removed at the end).

Figures (session of issue 15, sandbox labs ``--ovn standalone``, idle 60 s, medians of 1-2
rounds; the CPU figures are 10 ms ticks over 60 s, so ±0.02 % is noise). Trees, all on the same
base: A before this session's transport changes; B + the quiet input driver
(screens/driver.py); C + keepalives (libvirt 3 s x 1, SSH 4 s x 2 under libvirt); D + AES-GCM
first (backends/ssh.py):

=====================  ==============  ==============  ==============  ==============
console, % of a core   A before        B driver        C keepalive     D final
=====================  ==============  ==============  ==============  ==============
3 hosts x 1,000        0.34 (28 w/s)   0.22 (19 w/s)   0.19 (18 w/s)   -
4 hosts x 1,000        0.28 (35 w/s)   -               0.17 (20 w/s)   0.20 (20 w/s)
16 conn. (4 x 4)       0.67-0.80       -               -               0.40-0.45
=====================  ==============  ==============  ==============  ==============

(w/s: the console's wakeups per second, all threads.) Each libvirtd 0.00-0.03 % throughout.
At 16 connections the asyncssh I/O thread went 0.25-0.32 % -> 0.15-0.20 % and wakeups 78-80
-> 50-66 /s. bench_startup.py at 3x1,000 (same session, load 6.9): idle console 0.15 %,
libvirtd 0.02-0.03 %.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PY = str(ROOT / ".venv" / "bin" / "python")
CLK_TCK = os.sysconf("SC_CLK_TCK")
STATUS = re.compile(r"hosts (\d+)/(\d+) up .*NB (\w+)")


def stat_cpu(path: str) -> float:
    f = open(path).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / CLK_TCK


def switches(path: str) -> int:
    n = 0
    for line in open(path):
        if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
            n += int(line.split()[1])
    return n


def io_calls(pid: int) -> tuple[int, int]:
    d = dict(line.split(": ") for line in open(f"/proc/{pid}/io").read().splitlines())
    return int(d["syscr"]), int(d["syscw"])


def threads(pid: int) -> dict[int, tuple[float, int]]:
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out[int(tid)] = (stat_cpu(f"/proc/{pid}/task/{tid}/stat"),
                             switches(f"/proc/{pid}/task/{tid}/status"))
        except OSError:
            pass
    return out


class Console:
    """The console in a tmux pane of its own server (160x48), from this tree or ``tree``."""

    def __init__(self, config: str, tree: str | None, env: dict):
        self.sock = f"vdidle-{os.getpid()}-{time.monotonic_ns()}"
        self.env = env
        run = (f"env PYTHONPATH={shlex.quote(tree)} {shlex.quote(PY)} -m virtdeck.console.cli"
               if tree else f"{shlex.quote(PY)} -m virtdeck.console.cli")
        self.tmux("new-session", "-d", "-x", "160", "-y", "48", "sh", "-c",
                  f"exec {run} --config {shlex.quote(config)} --readonly")
        self.pid = int(self.tmux("display", "-p", "-t", "0", "#{pane_pid}").strip())

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True,
                              env=self.env).stdout

    def wait_up(self, n_hosts: int, timeout: float = 120) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            m = STATUS.search(self.tmux("capture-pane", "-p", "-t", "0"))
            if m and int(m.group(1)) == n_hosts and m.group(3) == "up":
                return time.monotonic() - t0
            time.sleep(0.2)
        raise SystemExit("the console did not show every host and the NB up within "
                         f"{timeout:g} s:\n{self.tmux('capture-pane', '-p', '-t', '0')}")

    def close(self) -> None:
        self.tmux("send-keys", "-t", "0", "q")
        for _ in range(50):
            if not Path(f"/proc/{self.pid}").exists():
                break
            time.sleep(0.1)
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True)


def measure(con: Console, libvirtds: dict[str, int], idle: float) -> dict:
    t0 = threads(con.pid)
    c0, io0 = stat_cpu(f"/proc/{con.pid}/stat"), io_calls(con.pid)
    lv0 = {h: stat_cpu(f"/proc/{p}/stat") for h, p in libvirtds.items()}
    w0 = time.monotonic()
    time.sleep(idle)
    w = time.monotonic() - w0
    t1 = threads(con.pid)
    c1, io1 = stat_cpu(f"/proc/{con.pid}/stat"), io_calls(con.pid)
    lv1 = {h: stat_cpu(f"/proc/{p}/stat") for h, p in libvirtds.items()}
    per = sorted(((t1[t][0] - t0[t][0]) / w * 100, (t1[t][1] - t0[t][1]) / w, t)
                 for t in t1 if t in t0)
    return {"cpu": (c1 - c0) / w * 100,
            "wakeups": sum(x[1] for x in per),
            "reads": (io1[0] - io0[0]) / w, "writes": (io1[1] - io0[1]) / w,
            "threads": sorted(per, key=lambda x: (-x[0], -x[1]))[:5],
            "libvirtd": {h: (lv1[h] - lv0[h]) / w * 100 for h in lv0}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=None)
    ap.add_argument("--old", metavar="DIR", help="the other tree (DIR/virtdeck/console, ...)")
    ap.add_argument("--tree", action="append", default=[], metavar="NAME=DIR",
                    help="one more tree to compare, as --old (repeatable)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--idle", type=float, default=60.0)
    ap.add_argument("--settle", type=float, default=10.0)
    ap.add_argument("--aliases", type=int, default=1, metavar="K")
    ap.add_argument("--per-host", type=int, default=0)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from virtdeck.backends.lab import hosts as labhosts
    from virtdeck.config import inventory as inv_mod
    from virtdeck.config.paths import lab_dir

    config = args.config or str(lab_dir() / "inventory.toml")
    inv = inv_mod.load(config)
    hosts = [h.name for h in inv.hypervisors if h.enabled]
    if args.aliases > 1:
        extra = tuple(replace(inv.host(h), name=f"{h}x{k}") for k in range(2, args.aliases + 1)
                      for h in hosts)
        config = str(inv_mod.save(replace(inv, hosts=inv.hosts + extra),
                                  Path(tempfile.mkdtemp(prefix="vdidle-")) / "inventory.toml"))
    n = len(hosts) * args.aliases
    outside = None
    if args.per_host:
        import bench_console as bc
        from virtdeck.backends.session import Session
        outside = Session(inv)
        bc.cleanup(outside, hosts)
        bc.define_many(outside, hosts, args.per_host)
    env = dict(os.environ, VIRTDECK_AUDIT_LOG=str(Path(tempfile.mkdtemp()) / "audit.jsonl"))
    lv = {h: labhosts.read_pidfile(labhosts.host_path(h, "/run/libvirtd.pid")) for h in hosts}
    lv = {h: p for h, p in lv.items() if p}
    trees = [("new", None)] + ([("old", args.old)] if args.old else []) + [
        tuple(t.split("=", 1)) for t in args.tree]
    res: dict[str, list[dict]] = {label: [] for label, _ in trees}
    try:
        for r in range(args.rounds):
            for label, tree in trees if r % 2 == 0 else trees[::-1]:
                con = Console(config, tree, env)
                try:
                    up = con.wait_up(n)
                    time.sleep(args.settle)
                    m = measure(con, lv, args.idle)
                finally:
                    con.close()
                res[label].append(m)
                print(f"round {r + 1} {label}: up in {up:.1f} s; idle {args.idle:.0f} s: console "
                      f"{m['cpu']:.2f} % of a core, {m['wakeups']:.1f} wakeups/s, "
                      f"{m['reads']:.1f} reads/s, {m['writes']:.1f} writes/s; libvirtd "
                      + ", ".join(f"{h} {v:.2f} %" for h, v in m["libvirtd"].items())
                      + f"; busiest threads (cpu %, wakeups/s): "
                      + ", ".join(f"{c:.2f}/{s:.1f}" for c, s, _ in m["threads"])
                      + f" (load {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        if outside is not None:
            bc.cleanup(outside, hosts)
            outside.close()
    print(f"\n== {n} connections ({len(hosts)} hosts x {args.aliases}), {args.per_host} shut-off "
          f"domains per host, idle {args.idle:.0f} s, medians; load now {os.getloadavg()[0]:.1f} ==")
    for label, ms in res.items():
        med = lambda k: statistics.median(m[k] for m in ms)  # noqa: E731
        lvs = [v for m in ms for v in m["libvirtd"].values()]
        print(f"{label}: console {med('cpu'):.2f} % (target <= 0.15), {med('wakeups'):.1f} "
              f"wakeups/s, {med('reads'):.1f} reads/s, {med('writes'):.1f} writes/s; each "
              f"libvirtd {statistics.median(lvs) if lvs else 0:.2f} % (target <= 0.1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
