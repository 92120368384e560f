#!/usr/bin/env python3
"""The live model alone, from ``LiveModel.start()`` to its first complete snapshot (every host
listed, the NB answered), in a fresh process per run, optionally alternating with an older
tree (A/B in the same minutes). Prints figures with the load average; asserts nothing.

    .venv/bin/virtdeck lab sandbox -- bash -c '.venv/bin/virtdeck lab up -n 4 &&
        .venv/bin/python tests/bench/bench_listing.py --per-host 2500 --old /tmp/old'

Never on the shared lab: it defines ``--per-host`` shut-off domains (``vdbench-*``, as
bench_console.py does) on every hypervisor and removes them at the end (``--keep`` leaves
them). ``--old DIR``: a tree whose packages live in ``DIR/virtdeck/`` (``git archive``), put
first on ``PYTHONPATH`` of its runs. Per run: model ready (s after ``start()``), the process's
CPU seconds until then, the SSH command and listing times each host logged, RSS after the
first snapshot (MiB), and the per-domain memory of the snapshot's VMs (tracemalloc is not
used: it slows the parse; RSS is what the operator pays), and the cyclic GC's runs and time
until the first complete snapshot.

Figures, session 4 (sandbox lab, 4 x 2,500 shut-off domains, standalone OVN, 2 cores shared
with three other engineers; medians):

- before (py-spy, 500 Hz, two runs): the host workers spend ~60 % of their samples parsing the
  definitions (ElementTree's C parser ~2/3 of that); the GC ran 201-213 times (1 full) until
  the first snapshot, 130-230 ms of the model's ~0.67 s CPU;
- GC gen-0 threshold raised while the first listing runs (console/live.py): GC 14-29 ms; ready
  1.16 -> 0.95 s, idle (30 s after 30 s) 0.66 -> 0.19 % with the idle-host poll back-off (2
  pairs, load 2.1-6.2);
- definitions filtered on the host (backends/domain_facts.py CONFIG_FILTER): ready 0.96 ->
  0.81 s, CPU 0.64 -> 0.61 s (4 pairs, load 3.7-5.0);
- the start-up heap frozen out of the GC 2 s after the first screen (console/live.py):
  event -> screen at 4x2,500 (bench_startup.py's headless child, define/undefine, 3
  alternating pairs, 240 events each) p95 285 -> 171 ms, max 514 -> 349 ms (py-spy had shown
  the UI thread's refills dominated by collections triggered in vm_rows and the table);
- all of the above, idle at 16 light hosts x 625 (bench_idle.py, 30 s after 35 s): console
  2.50 -> 0.40 % of a core, 351 -> 56 wakeups/s; what is left is mostly per-connection
  keepalive traffic (libvirt 2 s, SSH 3 s);
- tried, no gain: ``sys.setswitchinterval(0.001)`` during the listing (``--switch``; 3 pairs,
  ready 0.92 vs 0.97 s); parsing all definitions as one document (slower: 101-120 ms vs 73-88
  ms per 2,500); stripping more elements with a regex in Python (-20 % parse, not worth its
  fragility).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable

CHILD = r"""
import gc, json, logging, os, re, resource, sys, time
logs = []
gcs = {"n": 0, "n2": 0, "s": 0.0, "t": 0.0}
def _gc(phase, info):
    if phase == "start":
        gcs["t"] = time.perf_counter()
    else:
        gcs["n"] += 1; gcs["n2"] += info["generation"] == 2
        gcs["s"] += time.perf_counter() - gcs["t"]
gc.callbacks.append(_gc)
class H(logging.Handler):
    def emit(self, rec):
        logs.append(rec.getMessage())
logging.getLogger("virtdeck").addHandler(H()); logging.getLogger("virtdeck").setLevel(logging.INFO)
from virtdeck.config import inventory as inv_mod
from virtdeck.console.live import LiveModel
import virtdeck.console.live as L
inv = inv_mod.load(sys.argv[1])
c0 = time.process_time()
if os.environ.get("BENCH_SWITCH"):     # --switch: an experiment on the GIL's hand-over
    sys.setswitchinterval(float(os.environ["BENCH_SWITCH"]))
live = LiveModel(inv).start()
ok = live.wait_ready(120)
ready = live.ready_at - live.started_at
cpu = time.process_time() - c0
gc_ready = dict(gcs)
n = len(live.snapshot().vms)
time.sleep(float(sys.argv[2]))
t0 = time.process_time()
time.sleep(float(sys.argv[3]))
idle = (time.process_time() - t0) / float(sys.argv[3]) * 100 if float(sys.argv[3]) else 0.0
rss = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
live.stop()
print(json.dumps({"ok": ok, "ready": ready, "cpu": cpu, "vms": n, "rss": rss, "idle": idle,
                  "src": os.path.dirname(L.__file__), "gc": gc_ready,
                  "logs": [m for m in logs if "connected in" in m]}))
"""


def load() -> float:
    return os.getloadavg()[0]


def run_child(config: str, tree: str | None, settle: float, idle: float,
              switch: float | None = None) -> dict:
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = tree
    if switch:
        env["BENCH_SWITCH"] = str(switch)
    out = subprocess.run([PY, "-c", CHILD, config, str(settle), str(idle)], env=env,
                         capture_output=True, text=True, timeout=300)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def console_ab(config: str, inv, hosts: list[str], expected: int, runs: int,
               old: str | None) -> None:
    """``--console``: per run and tree (alternating), the floor then the console in tmux."""
    import bench_startup as bs
    res: dict[str, list[tuple[float, float, float]]] = {"new": [], "old": []}
    trees = [("new", None)] + ([("old", old)] if old else [])
    for i in range(runs):
        for label, tree in (trees if i % 2 == 0 else trees[::-1]):
            fl, _n = bs.floor(inv, hosts)
            paint, done, ld, _t = bs.tmux_run(config, len(hosts), expected, tree=tree)
            res[label].append((fl, paint, done))
            print(f"run {i + 1} {label}: floor {fl:.2f} s, first paint {paint:.2f} s, first "
                  f"complete {done:.2f} s, complete/floor {done / fl:.2f}x (load {ld:.1f})",
                  flush=True)
    for label, xs in res.items():
        if xs:
            m = statistics.median
            print(f"== {label}: {len(hosts)} hosts, {expected} domains, median of {len(xs)}: "
                  f"floor {m(x[0] for x in xs):.2f} s, paint {m(x[1] for x in xs):.2f} s, "
                  f"complete {m(x[2] for x in xs):.2f} s, complete/floor "
                  f"{m(x[2] / x[0] for x in xs):.2f}x (load {load():.1f})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-host", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--old", metavar="DIR", help="older tree (DIR/virtdeck/...) to alternate with")
    ap.add_argument("--settle", type=float, default=3.0, help="s after ready before RSS/idle")
    ap.add_argument("--idle", type=float, default=0.0, help="s of idle CPU measured after settle")
    ap.add_argument("--keep", action="store_true", help="leave the domains defined")
    ap.add_argument("--console", action="store_true",
                    help="instead: the console in tmux (bench_startup.py's first paint and first "
                         "complete screen, from Enter) beside the floor, trees alternating")
    ap.add_argument("--switch", type=float, default=None, metavar="S",
                    help="also run this tree with sys.setswitchinterval(S) (label new+switch)")
    ap.add_argument("--config", default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    import bench_console as bc
    from virtdeck.backends.session import Session
    from virtdeck.config import inventory as inv_mod
    from virtdeck.config.paths import lab_dir

    config = args.config or str(lab_dir() / "inventory.toml")
    inv = inv_mod.load(config)
    hosts = [h.name for h in inv.hypervisors if h.enabled]
    outside = Session(inv)
    try:
        have = sum(1 for h in hosts for d in outside.libvirt(h).listAllDomains()
                   if d.name().startswith(bc.PREFIX))
        if have != args.per_host * len(hosts):
            bc.cleanup(outside, hosts)
            took = bc.define_many(outside, hosts, args.per_host)
            print(f"defined {args.per_host * len(hosts)} shut-off domains in {took:.1f} s")
        for h in hosts:
            outside.libvirt(h).getCapabilities()
        if args.console:
            console_ab(config, inv, hosts, args.per_host * len(hosts), args.runs, args.old)
            return 0
        res: dict[str, list[dict]] = {"new": [], "old": [], "new+switch": []}
        trees = [("new", None)] + ([("old", args.old)] if args.old else []) \
            + ([("new+switch", None)] if args.switch else [])
        for i in range(args.runs):
            for label, tree in (trees if i % 2 == 0 else trees[::-1]):
                r = run_child(config, tree, args.settle, args.idle,
                              args.switch if label == "new+switch" else None)
                r["load"] = load()
                res[label].append(r)
                print(f"run {i + 1} {label}: ready {r['ready']:.2f} s, CPU {r['cpu']:.2f} s, "
                      f"{r['vms']} VMs, RSS {r['rss']:.0f} MiB, idle {r['idle']:.2f} % "
                      f"(load {r['load']:.1f}); GC until ready {r['gc']['n']} runs ({r['gc']['n2']} "
                      f"full) {r['gc']['s'] * 1000:.0f} ms", flush=True)
                for m in r["logs"]:
                    print("    ", m)
        for label, rs in res.items():
            if not rs:
                continue
            med = lambda k: statistics.median(x[k] for x in rs)  # noqa: E731
            print(f"== {label}: {len(hosts)}x{args.per_host}, median of {len(rs)}: ready "
                  f"{med('ready'):.2f} s, CPU {med('cpu'):.2f} s, RSS {med('rss'):.0f} MiB, "
                  f"idle {med('idle'):.2f} % (load {load():.1f})")
    finally:
        if not args.keep:
            print(f"removed {bc.cleanup(outside, hosts)} vdbench-* domains")
        outside.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
