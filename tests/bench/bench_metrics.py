#!/usr/bin/env python3
"""Benchmark what metrics cost: the console's CPU and RSS with metrics on against off, and the
libvirtd CPU the polling costs on each host. Prints figures; asserts nothing.

    .venv/bin/python tests/bench/bench_metrics.py [--per-host 1000] [--running 10] [--idle 60]

1. defines ``--per-host`` tiny shut-off domains (``vdbench-*``, as bench_console.py does) and
   starts ``--running`` tiny transient domains (``vdmet-*``: 32 MiB, no disk, TCG, SeaBIOS
   waiting for a boot device) on every lab hypervisor;
2. for each phase (off, on, off, on by default: ``--rounds``), a fresh process runs the console
   headless (LiveModel + App, 160x48, on the VMs panel: the panel whose rows the metrics make
   change each interval) with ``LiveModel(metrics=…)``, waits for the first complete picture and
   a settle time, then idles ``--idle`` seconds: its CPU time (% of one core) and RSS are
   measured over that window, and meanwhile the CPU time of every host's libvirtd
   (``/proc/PID/stat``; the libvirtd in the host's mount namespace);
3. undefines / destroys everything it made.

The interval is the inventory's ``metrics.interval`` (default 3 s). Run it in a sandbox, never on
the shared lab (it defines thousands of domains)::

    .venv/bin/virtdeck lab sandbox -- bash -c '.venv/bin/virtdeck lab up -n 3 &&
        .venv/bin/python tests/bench/bench_metrics.py; .venv/bin/virtdeck lab down'

Figures (2026-11-28, sandbox lab, 3 hosts x 1,000 domains, 10 running per host, 3 s interval,
``--idle 30 --settle 8 --rounds 1``; CPU ticks are 10 ms, so one window resolves ~0.03 %):

    VMs table                 metrics off            metrics on             on - off
    rebuilt at every refill   1.44 % (UI 0.93, 19)   2.24 % (UI 1.53, 28)   +0.80 %
    incremental refill        0.33 % (UI 0.00,  6)   0.64 % (UI 0.13, 18)   +0.31 %

(% of one core; UI = the main thread; the last figure is the snapshots published in the window.)
The UI thread's cost per snapshot fell from ~16 ms to ~2 ms: a snapshot whose figures change
only the running VMs' rows replaced the whole 3,030-row table before; CloudTable now replaces
just those rows (screens/table.py, tests/bench/bench_table_update.py: 1.4-2.0 ms → 0.2-0.6 ms
at 3,030 rows). The "rebuilt" row ran the same tree with the incremental path switched off.
libvirtd: 0.17-0.27 % per host off, 0.23-0.33 % on (+0.03-0.10 %).
A second incremental run (``--rounds 2``): off 0.58 / 0.33 %, on 0.69 / 0.91 %; mean +0.35 %
(rounds +0.11 and +0.58: the windows are noisy). With metrics on the UI thread costs 0.13-0.27 %;
most of the rest is the other threads (collection and snapshots: 0.57-0.60 % on vs 0.33-0.40 % off),
so the 0.2 % target is still not met there, no longer because of the table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_console import cleanup, cpu_seconds, define_many, rss_mib  # noqa: E402
from metrics_helpers import running_xml  # noqa: E402
from virtdeck.backends.session import Session  # noqa: E402
from virtdeck.config import inventory as inv_mod  # noqa: E402
from virtdeck.config.paths import lab_dir  # noqa: E402

RUN_PREFIX = "vdmet-"
TICK = os.sysconf("SC_CLK_TCK")


def start_running(session: Session, hosts: list[str], per_host: int) -> None:
    def one(host: str) -> None:
        conn = session.libvirt(host)
        for i in range(per_host):
            conn.createXML(running_xml(f"{RUN_PREFIX}{host}-{i:03d}"), 0)
    with ThreadPoolExecutor(len(hosts)) as pool:
        list(pool.map(one, hosts))


def stop_running(session: Session, hosts: list[str]) -> int:
    n = 0
    for host in hosts:
        for d in session.libvirt(host).listAllDomains():
            if d.name().startswith(RUN_PREFIX):
                d.destroy()
                n += 1
    return n


def libvirtd_pids(session: Session, hosts: list[str]) -> dict[str, int]:
    """Each host's libvirtd: the one in the host's mount namespace (lab hosts share the PID
    namespace, and ``libvirtd -d`` there writes no pid file)."""
    script = ('me=$(readlink /proc/self/ns/mnt); for p in $(pgrep -x libvirtd); do '
              '[ "$(readlink /proc/$p/ns/mnt)" = "$me" ] && echo $p; done')
    return {h: int(session.run(h, ["sh", "-c", script]).stdout.split()[0]) for h in hosts}


def threads_cpu() -> tuple[float, float]:
    """CPU seconds of this process's main thread (the UI loop) and of all its other threads
    (live-model workers, the I/O loop, libvirt's event loop); threads that ended are lost."""
    main = other = 0.0
    for task in Path("/proc/self/task").iterdir():
        try:
            f = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        s = (int(f[11]) + int(f[12])) / TICK
        if int(task.name) == os.getpid():
            main += s
        else:
            other += s
    return main, other


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` so far (the lab shares this PID namespace)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


# ---------------------------------------------------------------------------------------------
# One phase, in its own process


async def phase(config: str, on: bool, idle: float, settle: float) -> dict:
    from virtdeck.console.app import VirtdeckApp
    from virtdeck.console.live import LiveModel
    inv = inv_mod.load(config)
    live = LiveModel(inv, metrics=on).start()
    app = VirtdeckApp(live, inventory=inv, panel="vms")
    app.animation_level = "none"
    async with app.run_test(size=(160, 48)):
        await asyncio.to_thread(live.wait_ready, 120)
        await asyncio.sleep(settle)
        print("READY", flush=True)
        c0, t0, (m0, o0) = cpu_seconds(), time.monotonic(), threads_cpu()
        g0 = live.snapshot().generation
        await asyncio.sleep(idle)
        cpu, wall = cpu_seconds() - c0, time.monotonic() - t0
        m1, o1 = threads_cpu()
        out = {"metrics": on, "cpu_pct": 100 * cpu / wall, "rss_mib": rss_mib(), "wall_s": wall,
               "ui_pct": 100 * (m1 - m0) / wall, "workers_pct": 100 * (o1 - o0) / wall,
               "snapshots": live.snapshot().generation - g0,
               "vms": len(app.cloud.vms), "samples": live.metrics.samples,
               "interval_s": live.stats_interval}
        print("END", flush=True)
    live.stop()
    return out


def run_phase(config: str, on: bool, idle: float, settle: float, session: Session,
              pids: dict[str, int]) -> dict:
    proc = subprocess.Popen([sys.executable, __file__, "--phase", "on" if on else "off",
                             "--idle", str(idle), "--settle", str(settle), "--config", config],
                            stdout=subprocess.PIPE, text=True)
    before: dict[str, float] = {}
    t0 = 0.0
    result: dict = {}
    for line in proc.stdout:
        line = line.strip()
        if line == "READY":
            before, t0 = {h: proc_cpu(p) for h, p in pids.items()}, time.monotonic()
        elif line == "END":
            wall = time.monotonic() - t0
            result["libvirtd_pct"] = {h: 100 * (proc_cpu(p) - before[h]) / wall for h, p in pids.items()}
        elif line.startswith("{"):
            result.update(json.loads(line))
    proc.wait()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-host", type=int, default=1000)
    ap.add_argument("--running", type=int, default=10, help="running tiny domains per host")
    ap.add_argument("--idle", type=float, default=60.0, help="seconds measured per phase")
    ap.add_argument("--settle", type=float, default=10.0, help="seconds after ready before measuring")
    ap.add_argument("--rounds", type=int, default=2, help="off/on pairs")
    ap.add_argument("--config", default=str(lab_dir() / "inventory.toml"))
    ap.add_argument("--phase", choices=("on", "off"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(asyncio.run(phase(args.config, args.phase == "on", args.idle, args.settle))),
              flush=True)
        return 0
    inv = inv_mod.load(args.config)
    hosts = [h.name for h in inv.hypervisors if h.enabled]
    with Session(inv) as s:
        cleanup(s, hosts)
        stop_running(s, hosts)
        try:
            took = define_many(s, hosts, args.per_host)
            start_running(s, hosts, args.running)
            print(f"{len(hosts)} hosts x {args.per_host} domains defined in {took:.1f} s, "
                  f"{args.running} running per host; interval {inv.metrics.interval:g} s; "
                  f"idle window {args.idle:g} s per phase", flush=True)
            pids = libvirtd_pids(s, hosts)
            results = []
            for _ in range(args.rounds):
                for on in (False, True):
                    r = run_phase(args.config, on, args.idle, args.settle, s, pids)
                    results.append(r)
                    lv = ", ".join(f"{h} {v:.3f} %" for h, v in sorted(r.get("libvirtd_pct", {}).items()))
                    print(f"metrics {'on ' if on else 'off'}: console CPU {r.get('cpu_pct', float('nan')):.3f} % "
                          f"of a core (UI thread {r.get('ui_pct', float('nan')):.3f}, other threads "
                          f"{r.get('workers_pct', float('nan')):.3f}; {r.get('snapshots')} snapshots), RSS {r.get('rss_mib', 0):.0f} MiB ({r.get('vms')} VMs, "
                          f"{r.get('samples')} samples); libvirtd {lv}", flush=True)
            for on in (False, True):
                rs = [r for r in results if r.get("metrics") is on]
                if not rs:
                    continue
                cpu = sum(r["cpu_pct"] for r in rs) / len(rs)
                lv = {h: sum(r["libvirtd_pct"][h] for r in rs) / len(rs) for h in hosts}
                print(f"mean metrics {'on ' if on else 'off'}: console {cpu:.3f} % of a core, "
                      f"RSS {sum(r['rss_mib'] for r in rs) / len(rs):.0f} MiB; libvirtd "
                      + ", ".join(f"{h} {v:.3f} %" for h, v in lv.items()))
        finally:
            print(f"cleanup: {stop_running(s, hosts)} running, {cleanup(s, hosts)} defined domains removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
