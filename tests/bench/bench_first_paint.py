#!/usr/bin/env python3
"""First paint from process start, in tmux, polled every 10 ms: this tree against another.
Prints figures with the load beside them; asserts nothing. Needs no lab.

    .venv/bin/python tests/bench/bench_first_paint.py --runs 10 [--old DIR] [--config INV]

The console (``virtdeck --readonly``) runs in a tmux pane of its own server at 160x48; the pane
waits in ``read``, the clock starts when Enter is sent, and ``capture-pane`` polls every
``--poll`` s until the status line and the panel headers show (the frame bench_startup.py calls
first paint; its 0.1 s polling rounds up by up to 0.1 s, this one by up to ``--poll`` plus one
capture, ~5 ms). Without ``--config`` the inventory is 3 hypervisors on closed loopback ports
and no NB: the first frame does not wait for any host (the live model starts behind it), so
the figure is the console's own start-up. ``--old DIR``: a tree whose console/ backends/
screens/ config/ sit in DIR/virtdeck/ (``git archive``), run alternately with this one.

Also prints ``-X importtime`` totals of what the console imports before its first frame
(``virtdeck.console.cli`` + the parser + ``virtdeck.console.app``) and whether libvirt,
asyncssh, ovsdbapp, pycdlib or yaml are among them.

Figures (session of issue 15; 2 shared cores, 10 alternating pairs each, medians (range)):
before = the tree without this session's first-paint changes (libvirt, vm services and
backends.metrics on the start path, the full parser and importlib.metadata built at start):

==========================  ====================  ====================  =====
bytecode                    before                after                 load
==========================  ====================  ====================  =====
none (PYTHONDONTWRITE...=1) 0.798 s (0.49-1.18)   0.584 s (0.42-0.94)   6.5
  console CPU by then       0.45 s                0.35 s
warm private cache (--pyc)  0.433 s (0.38-0.56)   0.414 s (0.33-0.60)   3.6
  console CPU by then       0.36 s                0.32 s
==========================  ====================  ====================  =====

What is left (quiet machine, warm bytecode): interpreter + site ~30 ms (the editable
install's finder ~10 ms), textual.app ~140 ms, this package ~30 ms, App.run to the first frame
~150 ms (Textual: CSS of every widget class, compose, three resizes, two full renders).
Tried without gain: the main screen as the app's base screen (0.362 vs 0.374 s).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = str(ROOT / ".venv" / "bin" / "python")
STATUS = re.compile(r"hosts (\d+)/(\d+) up .*VMs (\d+)/(\d+) running")
HEADERS = re.compile(r"1 Hosts\s+2 VMs")
HEAVY = ("libvirt", "asyncssh", "ovsdbapp", "ovs", "pycdlib", "yaml", "passlib", "pyroute2",
         "prometheus_client", "argcomplete")


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def unreachable_inventory() -> str:
    d = Path(tempfile.mkdtemp(prefix="vdpaint-"))
    text = "".join(f'[[hosts]]\nname = "hv{i}"\naddress = "127.0.0.1"\nport = {closed_port()}\n'
                   f'user = "root"\n\n' for i in range(1, 4))
    (d / "inventory.toml").write_text(text)
    return str(d / "inventory.toml")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) ``pid`` has used, from /proc/PID/stat (10 ms ticks)."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def paint_once(config: str, tree: str | None, poll: float, env: dict) -> tuple[float, float]:
    """(first paint s from Enter, the console's CPU s by then)."""
    sock = f"vdpaint-{os.getpid()}-{time.monotonic_ns()}"
    run = (f"env PYTHONPATH={shlex.quote(tree)} {shlex.quote(PY)} -m virtdeck.console.cli"
           if tree else f"{shlex.quote(PY)} -m virtdeck.console.cli")
    cmd = f"read _; exec {run} --config {shlex.quote(config)} --readonly"

    def tmux(*args: str) -> str:
        return subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True,
                              env=env).stdout

    tmux("new-session", "-d", "-x", "160", "-y", "48", "sh", "-c", cmd)
    pid = int(tmux("display", "-p", "-t", "0", "#{pane_pid}").strip())
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        tmux("send-keys", "-t", "0", "Enter")
        while True:
            text = tmux("capture-pane", "-p", "-t", "0")
            now = time.monotonic() - t0
            if STATUS.search(text) and HEADERS.search(text):
                return now, cpu_s(pid)
            if now > 30:
                raise SystemExit(f"no first paint within 30 s; the pane shows:\n{text}")
            time.sleep(poll)
    finally:
        tmux("send-keys", "-t", "0", "q")
        for _ in range(30):             # the console quits on q (up to 3 s on a busy machine)
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)
        subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True)


def import_profile(tree: str | None) -> tuple[float, list[str]]:
    code = ("import sys, virtdeck.console.cli as c; c.build_parser(); import virtdeck.console.app, "
            "virtdeck.console.live_start; print(' '.join(m for m in %r if m in sys.modules))" % (HEAVY,))
    env = dict(os.environ, **({"PYTHONPATH": tree} if tree else {}))
    res = subprocess.run([PY, "-X", "importtime", "-c", code], capture_output=True, text=True,
                         env=env, check=True)
    total = sum(int(m.group(1)) for m in re.finditer(r"import time:\s+(\d+) \|", res.stderr))
    return total / 1e6, res.stdout.split()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--poll", type=float, default=0.01)
    ap.add_argument("--config", help="inventory (default: 3 hypervisors on closed loopback ports)")
    ap.add_argument("--old", metavar="DIR", help="the other tree (DIR/virtdeck/console, ...)")
    ap.add_argument("--pyc", action="store_true",
                    help="with bytecode caches, as an installed package has them: a private "
                         "PYTHONPYCACHEPREFIX, written by one warm-up start per tree (without "
                         "it the environment decides; PYTHONDONTWRITEBYTECODE=1 compiles every "
                         "module of the checkout from source at each start)")
    args = ap.parse_args()
    config = args.config or unreachable_inventory()
    env = dict(os.environ, VIRTDECK_AUDIT_LOG=str(Path(tempfile.mkdtemp()) / "audit.jsonl"))
    trees = [("new", None)] + ([("old", args.old)] if args.old else [])
    if args.pyc:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="vdpaint-pyc-")
        os.environ.update(PYTHONPYCACHEPREFIX=env["PYTHONPYCACHEPREFIX"])
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        for _, tree in trees:
            paint_once(config, tree, 0.05, env)   # writes the bytecode
    print(f"bytecode: {'private cache, warm' if args.pyc else 'as the environment has it'} "
          f"(PYTHONDONTWRITEBYTECODE={env.get('PYTHONDONTWRITEBYTECODE', '')!r})")
    for label, tree in trees:
        secs, heavy = import_profile(tree)
        print(f"{label}: imports before the first frame {secs * 1000:.0f} ms (-X importtime, "
              f"self times summed); heavy modules among them: {' '.join(heavy) or 'none'}")
    res: dict[str, list[tuple[float, float]]] = {label: [] for label, _ in trees}
    for i in range(args.runs):
        for label, tree in trees if i % 2 == 0 else trees[::-1]:
            t, cpu = paint_once(config, tree, args.poll, env)
            res[label].append((t, cpu))
            print(f"run {i + 1} {label}: first paint {t:.3f} s, console CPU by then {cpu:.2f} s "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
    for label, xs in res.items():
        ts, cs = [t for t, _ in xs], [c for _, c in xs]
        print(f"{label}: first paint median {statistics.median(ts):.3f} s "
              f"({min(ts):.3f}-{max(ts):.3f}), CPU by then median {statistics.median(cs):.2f} s, "
              f"{len(xs)} runs; load now {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
