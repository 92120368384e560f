#!/usr/bin/env python3
"""Start-up from process start, in a real terminal, beside the floor and a `virsh list` loop.
Prints figures with the load average beside each; asserts nothing.

    .venv/bin/virtdeck lab sandbox -- bash -c '.venv/bin/virtdeck lab up -n 3 &&
        .venv/bin/python tests/bench/bench_startup.py --per-host 1000; .venv/bin/virtdeck lab down'

Never on the shared lab: it defines ``--per-host`` shut-off domains (``vdbench-*``, tenant
``bench``) on every hypervisor of the inventory (sizes 3x1,000: ``lab up -n 3``; 4x2,500: ``-n 4
--per-host 2500``; 16x625: ``lab up -n 0 --light 16 --per-host 625``, 16 real light
hypervisors — sshd + libvirtd each, backends/lab/light.py). The three sizes in one go::

    .venv/bin/virtdeck lab sandbox -- bash -c 'B=tests/bench/bench_startup.py;
        .venv/bin/virtdeck lab up -n 3 && .venv/bin/python $B --per-host 1000;
        .venv/bin/virtdeck lab up -n 4 && .venv/bin/python $B --per-host 2500;
        .venv/bin/virtdeck lab up -n 0 --light 16 && .venv/bin/python $B --per-host 625 --small 62'

Steps:

1. defines ``--small`` domains per host, measures the console's RSS in tmux (for the slope),
   then defines up to ``--per-host`` and warms each libvirtd's capabilities (the first
   ``getCapabilities`` after libvirtd starts probes every qemu binary, which a long-running
   hypervisor has long done);
2. ``--runs`` times, in this order, each with the 1-minute load average printed beside it:
   the floor — a fresh ``python`` that opens one libvirt-python ``qemu+ssh://`` connection per
   host in parallel and calls ``listAllDomains`` + ``getAllDomainStats`` (spawn to exit); the
   ``ssh HOST virsh list --all`` loop (OpenSSH, one host after the other); the console in tmux
   (160x48): the pane waits in ``read``, the clock starts when Enter is sent (as the operator
   presses it), ``capture-pane`` polls every 0.1 s for the first paint (status line and panel
   headers; ``2`` is then sent, as an operator opens the VMs panel) and the first complete
   screen (status line: every host up, every domain counted, NB up; the VMs panel's visible
   rows are bench rows with state shutoff, 1 vCPU, 32 MiB, tenant bench);
3. after the last run the console stays open ``--idle`` s: CPU of the console and of each
   libvirtd (from /proc/PID/stat), the console's RSS and each libvirtd's;
4. a headless second column: a fresh ``python`` that runs the App headless (run_test, as
   bench_console.py does): when its VMs table holds every row, from its process start (its
   own imports of the bench's modules included), then the event -> screen latency (define /
   undefine from outside, p50 / p95);
5. every target of the issue as one line: ``TARGET name: figure | target | ratio | met or
   MISSED | load`` (the slope has no fixed target: flat or falling across sizes, compare them);
6. undefines every ``vdbench-*`` domain.

The 0.1 s polling rounds figures up by up to 0.1 s (plus one ``capture-pane``, ~5-20 ms).

Figures, 2026-11-28 16:34-16:39 UTC, tree 139342c plus other engineers' uncommitted console
changes (one sandbox per run of the three sizes, cluster-ssl OVN; 2 cores shared with 3 other
engineers' runs; medians of 3 runs; "load" = 1-minute load average beside the figure; every
wall time here is load-bound, the ratios less so since floor, virsh loop and console ran in
the same minute; 16x625 = 16 real light hypervisors, ``lab up -n 0 --light 16``):

=============================  ==========  ==========  ===========
                               3x1,000     4x2,500     16x625
=============================  ==========  ==========  ===========
load                           10.1-10.5   8.6-9.0     18.9-23.6
first paint (tmux)             0.53 s      0.96 s      0.95 s      (target 0.40) missed
first complete screen (tmux)   0.95 s      2.29 s      2.53 s
  headless, from its start     1.48 s      1.98 s      1.68 s
floor                          0.45 s      0.92 s      2.15 s
virsh list loop                1.09 s      2.59 s      6.65 s
complete / floor               2.12x       2.49x       1.17x       (target 1.5x)
complete / virsh loop          0.87x       0.88x       0.38x       (target 0.6x)
event -> screen p50 / p95      39/65 ms    57/136 ms   56/122 ms   (target p95 200) met
idle CPU console               0.17 %      0.17 %      0.37 %      (target 0.15) missed
idle CPU each libvirtd, worst  0.03 %      0.03 %      0.07 %      (target 0.1) met
RSS console                    97 MiB      117 MiB     122 MiB     (target 120 at 10,000)
RSS slope, MiB per 1,000 dom.  2.98        2.85        3.23
libvirtd RSS each              40 MiB      56 MiB      32 MiB
=============================  ==========  ==========  ===========

Session 3, for comparison (3x1,000 load 2.3-3.8 / 4x2,500 7.4-9.2 / 16x625 on 4 hosts under
4 names each, load 5.5-6.4): paint 0.53 / 0.53 / 0.52 s, complete 1.22 / 1.84 / 2.20 s, floor
0.43 / 0.45 / 1.38 s, virsh loop 0.97 / 2.09 / 4.66 s, event p95 72 / 193 / 390 ms, idle
console 0.43 / 0.60 / 1.70 %, RSS 104 / 125 / 116 MiB, slope 6.5 / 3.95 / 2.64. (Before the
malloc_trim change: 4x2,500 RSS 141-147 MiB, slope 5.4-6.0.) The floor at 16 real hosts
(2.15 s) is above the 4-hosts-under-4-names one (1.38 s): 16 ssh + libvirtd pairs, not 4.

A/B, first paint and every host + NB up (``--paint-ab``, the shared lab, 4 pairs each):
session start tree vs the live model imported behind the first frame (console/live_start.py):
at load 7-8 paint 2.31 -> 1.41 s, up 2.41 -> 2.86 s; at load ~2 paint 1.01 -> 0.53 s, up 1.22
-> 1.10 s; waiting for the first frame vs not (load 1.6): paint 0.52 vs 0.52 s, up 1.09 vs
1.04 s. Idle at 16 connections (30 s, thread CPU): the asyncssh I/O thread 0.77-0.80 %,
libvirt's event thread 0.17-0.20 %, the UI 0.03-0.13 %: ~2 SSH packets/s per connection (the
stats poll's node calls and libvirt keepalive), not redraws; snapshots in 30 s 52 -> 18 after
equal SB/NB reads and small free-RAM moves stopped publishing. Traced Python memory at 5,000
domains: 3.0 KiB per domain (the VMs rows ~0.5 KiB, Textual's line caches ~0.5 KiB, domain
facts' strings); the rest of the RSS slope was freed malloc arenas (malloc_trim).
CloudTable (tests/bench/bench_table_sort.py, load 11): 10,000 rows first fill 24 ms, refill
6-10 ms (sorted by name 154 ms first fill): the table is not where the time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PY = str(ROOT / ".venv" / "bin" / "python")
VIRTDECK = str(ROOT / ".venv" / "bin" / "virtdeck")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# One libvirt-python connection per host in parallel: listAllDomains + getAllDomainStats.
FLOOR = r"""
import sys, threading, libvirt
libvirt.registerErrorHandler(lambda *a: None, None)
n = [0] * (len(sys.argv) - 1)
def one(i, uri):
    c = libvirt.open(uri)
    n[i] = len(c.listAllDomains())
    c.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_VCPU
                        | libvirt.VIR_DOMAIN_STATS_BALLOON, 0)
    c.close()
ts = [threading.Thread(target=one, args=(i, u)) for i, u in enumerate(sys.argv[1:])]
[t.start() for t in ts]; [t.join() for t in ts]
print(sum(n))
"""

STATUS = re.compile(r"hosts (\d+)/(\d+) up .*VMs (\d+)/(\d+) running .*NB (\w+)")
HEADERS = re.compile(r"1 Hosts\s+2 VMs")


def load() -> float:
    return os.getloadavg()[0]


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of ``pid`` from /proc/PID/stat."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / CLK_TCK


def proc_rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def floor(inv, hosts: list[str]) -> tuple[float, int]:
    # libvirt's ssh transport runs `ssh`; a wrapper gives it the inventory's known_hosts
    # (the URI has no such parameter for OpenSSH), so nothing is added to ~/.ssh
    wrapper = Path(tempfile.mkdtemp(prefix="vdfloor-")) / "ssh"
    wrapper.write_text("#!/bin/sh\nexec ssh -o BatchMode=yes -o UserKnownHostsFile="
                       f"{shlex.quote(str(inv.ssh.known_hosts))} \"$@\"\n")
    wrapper.chmod(0o755)
    uris = []
    for name in hosts:
        h = inv.host(name)
        port = f":{h.port}" if h.port else ""
        uris.append(f"qemu+ssh://{h.user or 'root'}@{h.address}{port}/system"
                    f"?keyfile={inv.ssh.identity}&no_tty=1&command={wrapper}")
    t0 = time.monotonic()
    res = subprocess.run([PY, "-c", FLOOR, *uris], capture_output=True, text=True, check=True)
    return time.monotonic() - t0, int(res.stdout.strip())


class Tmux:
    """The console in a tmux pane of its own server (socket ``-L``), 160x48."""

    count = 0

    def __init__(self, config: str, tree: str | None = None):
        Tmux.count += 1
        self.sock = f"vdstartup-{os.getpid()}-{Tmux.count}"
        # tree: another checkout's folders as the virtdeck package (A/B against an older tree)
        run = (f"env PYTHONPATH={shlex.quote(tree)} {shlex.quote(PY)} -m virtdeck.console.cli"
               if tree else shlex.quote(VIRTDECK))
        cmd = f"read _; exec {run} --config {shlex.quote(config)} --readonly"
        self.tmux("new-session", "-d", "-x", "160", "-y", "48", "sh", "-c", cmd)
        # a console that exits (an error at start) leaves its last screen to report, not a
        # vanished tmux server
        self.tmux("set-option", "-t", "0", "remain-on-exit", "on")
        self.pid = int(self.tmux("display", "-p", "-t", "0", "#{pane_pid}").strip())

    def tmux(self, *args: str) -> str:
        res = subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True)
        if res.returncode:
            raise RuntimeError(f"tmux {args[0]}: {res.stderr.strip()}")
        return res.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "0")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "0", *keys)

    def close(self) -> None:
        try:
            self.keys("q")
            time.sleep(1)
        except RuntimeError:
            pass
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True)


def complete(text: str, n_hosts: int, expected: int) -> bool:
    m = STATUS.search(text)
    if not m or m.group(5) != "up" or int(m.group(1)) != n_hosts or int(m.group(4)) < expected:
        return False
    rows = [ln for ln in text.splitlines() if ln.startswith("vdbench-")]   # not the details
    # cells may end in "…" where the table gives a column less room (16 host names)
    good = [ln for ln in rows if re.search(r"vdbench-\S+\s+\S+\s+shut(off|o…|…)\s+1\s+32\s+bench", ln)]
    return len(rows) >= 20 and len(good) == len(rows)


def all_up(text: str, n_hosts: int) -> bool:
    m = STATUS.search(text)
    return bool(m) and m.group(5) == "up" and int(m.group(1)) == n_hosts


def paint_ab(config: str, runs: int, old: str | None) -> None:
    """First paint and every-host-up, this tree vs ``old`` alternating (any lab, read-only)."""
    from virtdeck.config import inventory as inv_mod
    n = len([h for h in inv_mod.load(config).hypervisors if h.enabled])
    res: dict[str, list] = {"new": [], "old": []}
    for i in range(runs):
        for label, tree in (("new", None), ("old", old)) if old else (("new", None),):
            paint, up, ld, _ = tmux_run(config, n, None, tree=tree)
            res[label].append((paint, up))
            print(f"run {i + 1} {label}: first paint {paint:.2f} s, all {n} hosts + NB up {up:.2f} s "
                  f"(load {ld:.1f})", flush=True)
    for label, xs in res.items():
        if xs:
            print(f"{label}: first paint {med([p for p, _ in xs])}, hosts + NB up "
                  f"{med([u for _, u in xs])} (load now {load():.1f})")


def tmux_run(config: str, n_hosts: int, expected: int, keep: bool = False,
             tree: str | None = None, poll: float = 0.1):
    """One console start in tmux, the pane captured every ``poll`` s. Returns (first paint s,
    first complete s, load, Tmux|None). ``expected`` None: complete is every host up and the NB
    up (any lab, no bench domains)."""
    t = Tmux(config, tree)
    paint = None
    t0 = time.monotonic()
    t.keys("Enter")
    try:
        while True:
            text = t.screen()
            now = time.monotonic() - t0
            if paint is None and STATUS.search(text) and HEADERS.search(text):
                paint = now
                t.keys("2")     # the operator opens the VMs panel
            if paint is not None and (complete(text, n_hosts, expected) if expected is not None
                                      else all_up(text, n_hosts)):
                done = now
                break
            if now > 120 or t.tmux("display", "-p", "-t", "0", "#{pane_dead}").strip() == "1":
                raise SystemExit(f"no complete screen ({now:.1f} s, console "
                                 f"{'exited' if now <= 120 else 'still running'}); the pane shows:\n{text}")
            time.sleep(max(0.0, poll - (time.monotonic() - t0 - now)))
        return paint, done, load(), (t if keep else None)
    finally:
        if not keep:
            t.close()


def headless(config: str, per_host: int, events: int) -> dict:
    p = subprocess.Popen([PY, __file__, "--headless-child", "--config", config,
                          "--per-host", str(per_host), "--events", str(events)],
                         stdout=subprocess.PIPE, text=True)
    out: dict = {}
    for line in p.stdout:
        if line.startswith("{"):
            out.update(json.loads(line))
    p.wait()
    return out


def headless_child(args) -> int:
    """In a fresh process: the App headless until complete, then events; prints JSON."""
    import asyncio
    sys.path.insert(0, str(HERE))
    import bench_console as bc   # imports the console (textual, libvirt, ovsdbapp, asyncssh)
    from virtdeck.backends.session import Session
    from virtdeck.config import inventory as inv_mod
    uptime = float(open("/proc/uptime").read().split()[0])
    start = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19]) / CLK_TCK
    age = uptime - start                  # seconds since this process started (10 ms ticks)
    inv = inv_mod.load(args.config)
    hosts = [h.name for h in inv.hypervisors if h.enabled]
    outside = Session(inv)
    res = asyncio.run(bc.run_console(inv, outside, hosts, args.per_host, args.events, 1.0,
                                     len(hosts)))
    outside.close()
    res["from_start"] = age + res["first_screen"]
    res["imports"] = bc.T_IMPORT
    print(json.dumps(res), flush=True)
    return 0


def target(name: str, figure: float, unit: str, limit: float, ld: float, note: str = "") -> None:
    """One line per target of the issue: figure, target, ratio figure/target, met or MISSED,
    the 1-minute load average beside it."""
    fmt = {"s": ".2f", "x": ".2f", "%": ".3f", "ms": ".0f", "MiB": ".0f"}[unit]
    sep = "" if unit in ("%", "x") else " "
    print(f"TARGET {name}: {figure:{fmt}}{sep}{unit} | <= {limit:g}{sep}{unit} | ratio "
          f"{figure / limit:.2f} | {'met' if figure <= limit else 'MISSED'} | load {ld:.1f}"
          + (f"  ({note})" if note else ""), flush=True)


def med(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} s ({min(xs):.2f}-{max(xs):.2f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-host", type=int, default=1000)
    ap.add_argument("--small", type=int, default=100, help="domains per host for the RSS slope")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--idle", type=float, default=30.0)
    ap.add_argument("--config", default=None)
    ap.add_argument("--paint-ab", action="store_true",
                    help="only first paint and hosts-up, on any lab (no domains defined), "
                         "alternating with --old")
    ap.add_argument("--old", metavar="DIR", help="a tree whose console/ backends/ screens/ "
                    "config/ live in DIR/virtdeck/ (e.g. from git archive), for --paint-ab")
    ap.add_argument("--headless-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    from virtdeck.config import inventory as inv_mod
    from virtdeck.config.paths import lab_dir
    args.config = args.config or str(lab_dir() / "inventory.toml")
    if args.headless_child:
        return headless_child(args)
    if args.paint_ab:
        paint_ab(args.config, args.runs, args.old)
        return 0
    sys.path.insert(0, str(HERE))
    import bench_console as bc
    from virtdeck.backends.lab import hosts as labhosts
    from virtdeck.backends.session import Session

    inv = inv_mod.load(args.config)
    hosts = [h.name for h in inv.hypervisors if h.enabled]
    cinv, config, shown = inv, args.config, hosts   # what the console, floor and virsh loop list
    n, expected = len(shown), args.per_host * len(shown)
    light = sum(1 for h in inv.hypervisors if h.enabled and not h.ovn)
    size = f"{n}x{args.per_host}" + (f" ({light} light hosts)" if light else "")
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %cI"],
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "?"
    print(f"[{size}] tree at {commit}" + (" (+ uncommitted changes)" if subprocess.run(
        ["git", "-C", str(ROOT), "diff", "--quiet", "HEAD", "--", "console", "backends", "screens",
         "config"]).returncode else ""), flush=True)
    outside = Session(inv)
    try:
        left = bc.cleanup(outside, hosts)
        if left:
            print(f"removed {left} leftover vdbench-* domains")
        rss_small = None
        if 0 < args.small < args.per_host:
            bc.define_many(outside, hosts, args.small)
            _, _, _, t = tmux_run(config, n, args.small * n, keep=True)
            time.sleep(3)
            rss_small = proc_rss_mib(t.pid)
            t.close()
            bc.cleanup(outside, hosts)
            print(f"[{size}] console RSS at {n}x{args.small}: {rss_small:.0f} MiB (load {load():.1f})")
        took = bc.define_many(outside, hosts, args.per_host)
        print(f"[{size}] defined {expected} shut-off domains in {took:.1f} s")
        for h in hosts:
            outside.libvirt(h).getCapabilities()
        rows, loads = [], []
        for i in range(args.runs):
            fl, nfl = floor(cinv, shown)
            fl_load = load()
            vt, vlines = bc.virsh_loop(cinv, shown)
            v_load = load()
            last = i == args.runs - 1
            paint, done, c_load, t = tmux_run(config, n, expected, keep=last)
            rows.append((fl, vt, paint, done))
            loads.append(c_load)
            print(f"[{size}] run {i + 1}: floor {fl:.2f} s ({nfl} domains, load {fl_load:.1f}) · "
                  f"virsh loop {vt:.2f} s ({vlines} lines, load {v_load:.1f}) · console first "
                  f"paint {paint:.2f} s, first complete {done:.2f} s (load {c_load:.1f}) · "
                  f"complete/floor {done / fl:.2f}x, complete/virsh {done / vt:.2f}x", flush=True)
        # idle: nothing changes; console and every libvirtd
        time.sleep(3)
        lv = {h: labhosts.read_pidfile(labhosts.host_path(h, "/run/libvirtd.pid")) for h in hosts}
        c0 = {h: proc_cpu(p) for h, p in lv.items() if p}
        k0, w0 = proc_cpu(t.pid), time.monotonic()
        time.sleep(args.idle)
        w = time.monotonic() - w0
        idle_console = (proc_cpu(t.pid) - k0) / w * 100
        idle_lv = {h: (proc_cpu(lv[h]) - c) / w * 100 for h, c in c0.items()}
        rss = proc_rss_mib(t.pid)
        lv_rss = [proc_rss_mib(p) for p in lv.values() if p]
        idle_load = load()
        t.close()
        hl = headless(config, args.per_host, args.events)

        fls, vts, paints, dones = (list(x) for x in zip(*rows))
        mf, mv, md = statistics.median(fls), statistics.median(vts), statistics.median(dones)
        print(f"\n== {size} ({expected} domains), {args.runs} runs, medians (range); "
              f"load now {load():.1f} on a 2-core shared machine ==")
        print(f"first paint (status line + panel headers), tmux:  {med(paints)}   target <= 0.40 s")
        print(f"first complete screen, tmux:                     {med(dones)}")
        print(f"  headless (fresh process, from its start):      {hl.get('from_start', 0):.2f} s "
              f"(imports {hl.get('imports', 0):.2f} s, model ready "
              f"{hl.get('model_ready', 0):.2f} s after them, load {hl.get('first_load', 0):.1f})")
        print(f"floor (libvirt-python, hosts in parallel):       {med(fls)}")
        print(f"`ssh HOST virsh list --all` loop:                {med(vts)}")
        print(f"ratio complete / floor:  {md / mf:.2f}x  (target <= 1.5x)")
        print(f"ratio complete / virsh:  {md / mv:.2f}x  (target <= 0.6x)")
        lat = hl.get("lat") or [0.0]
        print(f"event -> screen (headless, {len(lat)} events): p50 {bc.pct(lat, .5) * 1000:.0f} ms, "
              f"p95 {bc.pct(lat, .95) * 1000:.0f} ms  (target p95 <= 200 ms; load {load():.1f})")
        print(f"idle over {args.idle:.0f} s: console {idle_console:.2f} % of a core (target <= 0.15), "
              f"libvirtd " + ", ".join(f"{h} {v:.2f} %" for h, v in idle_lv.items())
              + f" (target <= 0.1 each); load {idle_load:.1f}")
        slope = ((rss - rss_small) / ((args.per_host - args.small) * n / 1000)) if rss_small else None
        print(f"console RSS: {rss:.0f} MiB at {size}" + (
            f", {rss_small:.0f} MiB at {n}x{args.small}: slope {slope:.2f} MiB per 1,000 domains"
            if rss_small else ""))
        if lv_rss:
            print(f"libvirtd RSS at {args.per_host} domains each: median {statistics.median(lv_rss):.0f} MiB "
                  f"({min(lv_rss):.0f}-{max(lv_rss):.0f}) over {len(lv_rss)} hosts")
        ml = statistics.median(loads)
        print(f"\n-- targets at {size} (figure | target | ratio | verdict | load) --")
        target("first paint (tmux)", statistics.median(paints), "s", 0.40, ml)
        target("complete / floor", md / mf, "x", 1.5, ml,
               f"{md:.2f} s / {mf:.2f} s")
        target("complete / virsh loop", md / mv, "x", 0.6, ml,
               f"{md:.2f} s / {mv:.2f} s" + ("" if n <= 4 else "; the issue sets it at 3x1,000 and 4x2,500"))
        if lat != [0.0]:
            target("event -> screen p95", bc.pct(lat, .95) * 1000, "ms", 200, hl.get("first_load", ml),
                   f"p50 {bc.pct(lat, .5) * 1000:.0f} ms, {len(lat)} events, headless")
        target("console RSS", rss, "MiB", 120, idle_load,
               "" if n * args.per_host >= 10000 else "the issue sets it at 16x625 (10,000 domains)")
        target("idle CPU, console", idle_console, "%", 0.15, idle_load)
        if idle_lv:
            worst = max(idle_lv, key=idle_lv.get)
            target("idle CPU, each libvirtd (worst)", idle_lv[worst], "%", 0.1, idle_load,
                   f"{worst}; median {statistics.median(idle_lv.values()):.3f} %")
        if slope is not None:
            print(f"TARGET RSS slope: {slope:.2f} MiB per 1,000 domains | flat or falling as the "
                  f"cloud grows (compare the sizes) | - | - | load {idle_load:.1f}")
    finally:
        removed = bc.cleanup(outside, hosts)
        print(f"cleaned up {removed} vdbench-* domains")
        outside.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
