#!/usr/bin/env python3
"""Console start-up A/B: first paint and first complete screen from process start, in tmux,
trees alternating in the same minutes, beside the floor. Prints figures and the load; asserts
nothing. Never on the shared lab (it defines ``vdbench-*`` domains)::

    git archive HEAD console backends screens config | tar -x -C /tmp/old/virtdeck
    .venv/bin/virtdeck lab sandbox -- bash -c '.venv/bin/virtdeck lab up -n 3 &&
        .venv/bin/python tests/bench/bench_start_ab.py --per-host 1000 --tree old=/tmp/old'

Each run: the floor (bench_startup.floor), then every tree once (order rotated per run); a
tree is ``label=DIR`` (DIR/virtdeck/ holds console/ backends/ screens/ config/), ``this`` is
this checkout. bench_startup's tmux measurement, polled every ``--poll`` s (figures round up
by up to that plus one capture, ~5 ms).

Figures (issue 15, 2 shared cores; medians, 5 and 4 alternating runs; "old" = the tree before
the early start, "early" = live model started before Textual's import, without / with the GC
held until 3 s after the first complete snapshot, console/live_start.py):

=================  ==========================  ==========================
                   3x1,000 (load 8-11)         4x2,500 (load 7-8)
=================  ==========================  ==========================
floor              0.44 s                      0.51 s
old                paint 0.39, complete 1.10   paint 0.41, complete 1.72
early, GC on       paint 0.67, complete 1.22   paint 0.70, complete 1.71
early + GC held    paint 0.45, complete 0.97   paint 0.50, complete 1.43
complete / floor   2.52x -> 2.22x              3.35x -> 2.79x
=================  ==========================  ==========================

Other rounds (same tree pairs): GC held without the early start: paint 0.42 -> 0.38 s but
complete 1.66 -> 1.82 s at 4x2,500 (load 5-7), 1.99 -> 2.80 s (load 16-25). Headless, one
process (3x1,000): live imports 0.17 s (0.15 s CPU), model start -> ready 0.31 s (0.22 s CPU),
ready -> CloudChanged handled 25-35 ms, -> VMs table full 40-70 ms: the path is CPU, not waits.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_console as bc  # noqa: E402
import bench_startup as bs  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-host", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--tree", action="append", default=[], metavar="LABEL=DIR",
                    help="another tree to compare (repeatable); 'this' checkout is always one")
    ap.add_argument("--config", default=None)
    ap.add_argument("--poll", type=float, default=0.02, help="s between two captures")
    args = ap.parse_args()
    from virtdeck.backends.session import Session
    from virtdeck.config import inventory as inv_mod
    from virtdeck.config.paths import lab_dir

    config = args.config or str(lab_dir() / "inventory.toml")
    inv = inv_mod.load(config)
    hosts = [h.name for h in inv.hypervisors if h.enabled]
    n, expected = len(hosts), args.per_host * len(hosts)
    trees = [("this", None)] + [tuple(t.split("=", 1)) for t in args.tree]
    outside = Session(inv)
    res: dict[str, list] = {label: [] for label, _ in trees}
    floors = []
    try:
        bc.cleanup(outside, hosts)
        took = bc.define_many(outside, hosts, args.per_host)
        print(f"[{n}x{args.per_host}] defined {expected} domains in {took:.1f} s", flush=True)
        for h in hosts:
            outside.libvirt(h).getCapabilities()
        bs.tmux_run(config, n, expected)   # warm-up (page cache, libvirtd), not counted
        for i in range(args.runs):
            fl, _ = bs.floor(inv, hosts)
            floors.append(fl)
            print(f"run {i + 1}: floor {fl:.2f} s (load {bs.load():.1f})", flush=True)
            order = trees[i % len(trees):] + trees[:i % len(trees)]
            for label, tree in order:
                paint, done, ld, _ = bs.tmux_run(config, n, expected, tree=tree, poll=args.poll)
                res[label].append((paint, done))
                print(f"run {i + 1} {label}: first paint {paint:.2f} s, complete {done:.2f} s, "
                      f"complete/floor {done / fl:.2f}x (load {ld:.1f})", flush=True)
        mf = statistics.median(floors)
        print(f"\n== {n}x{args.per_host}, {args.runs} runs, medians (range); floor {bs.med(floors)}; "
              f"load now {bs.load():.1f} ==")
        for label, xs in res.items():
            md = statistics.median(d for _, d in xs)
            print(f"{label:>8}: first paint {bs.med([p for p, _ in xs])}, complete "
                  f"{bs.med([d for _, d in xs])}, complete/floor {md / mf:.2f}x")
    finally:
        print(f"cleaned up {bc.cleanup(outside, hosts)} vdbench-* domains")
        outside.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
