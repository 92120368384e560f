"""Lab figures: up time (image cached), down time, image build cold / cached, control-plane
memory (PSS), guest boot to cloud-init done under TCG.

    .venv/bin/python tests/bench/bench_lab.py [--runs 3] [--no-cold] [--no-guest] [--vcpus 1]
                                              [--no-cleanup]

Runs every lab measurement in a sandbox (backends/lab/sandbox.py: fresh network + mount
namespaces with a private /run/netns and its own lab dir), so the lab people are using is never
touched and the memory figure counts only a fresh lab's processes. The cold image
build goes to a throw-away cache dir. Prints figures; asserts nothing. Needs root.

The sandboxes clean up after themselves whatever ends them (issue 17): interrupting the bench
(Ctrl-C, SIGTERM, SIGHUP) ends its sandbox and its lab; a bench killed outright leaves a
sandbox that the next `virtdeck lab status` reaps. The cleanup figures (``--no-cleanup`` skips
them) time exactly that: a sandbox with a 1-hypervisor lab and one running tiny guest
(tests/lab/sandbox_inner.py), from SIGTERM to everything gone, and from SIGKILL to the end of
the reap.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def inner(args) -> None:
    """Inside the sandbox: up/down cycles, memory, one guest. Prints one JSON line."""
    from virtdeck.backends.lab.down import down
    from virtdeck.backends.lab.netns import lab_netns, netns_pids
    from virtdeck.backends.lab.smoke import boot_probe
    from virtdeck.backends.lab.up import up
    quiet = lambda m: None  # noqa: E731
    ups, downs = [], []
    out: dict = {}
    for i in range(args.runs):
        t = time.monotonic()
        up(args.hypervisors, log=quiet)
        ups.append(time.monotonic() - t)
        if i == 0:
            t = time.monotonic()
            up(args.hypervisors, log=quiet)
            out["second_up_s"] = round(time.monotonic() - t, 2)
            time.sleep(2)  # let daemons settle before measuring memory
            per: dict[str, int] = {}
            for ns in lab_netns():
                for pid in netns_pids(ns):
                    comm = Path(f"/proc/{pid}/comm").read_text().strip()
                    per[comm] = per.get(comm, 0) + pss_kib(pid)
            out["pss_mib_total"] = round(sum(per.values()) / 1024, 1)
            out["pss_mib_by_process"] = {k: round(v / 1024, 1) for k, v in sorted(per.items(), key=lambda kv: -kv[1])}
        if i < args.runs - 1 or args.no_guest:
            t = time.monotonic()
            down(log=quiet)
            downs.append(time.monotonic() - t)
    out["up_s"] = [round(x, 2) for x in ups]
    out["down_s"] = [round(x, 2) for x in downs]
    if not args.no_guest:
        r = boot_probe("hv1", vcpus=args.vcpus, memory_mib=512, timeout=600)
        out["guest"] = {"vcpus": args.vcpus, "kernel_s": r.kernel_s and round(r.kernel_s, 1),
                        "runcmd_marker_s": r.marker_s and round(r.marker_s, 1),
                        "cloud_init_done_s": r.done_s and round(r.done_s, 1),
                        "hostname_seen": r.hostname_seen}
        t = time.monotonic()
        down(log=quiet)
        downs.append(time.monotonic() - t)
        out["down_s"] = [round(x, 2) for x in downs]
    print("BENCH " + json.dumps(out))


def image_figures(args) -> dict:
    from virtdeck.backends.lab.image import build_template, ensure_template
    out = {}
    t = time.monotonic()
    tpl = ensure_template(log=lambda m: None)
    out["image_cached_s"] = round(time.monotonic() - t, 3)
    out["image_qcow2_mib"] = round(tpl.qcow2.stat().st_size / 2**20, 1)
    out["image_sha256"] = tpl.sha256
    if not args.no_cold:
        tmp = Path(tempfile.mkdtemp(prefix="vd-bench-image-"))
        try:
            t = time.monotonic()
            build_template(tmp, log=lambda m: None)
            out["image_cold_s"] = round(time.monotonic() - t, 1)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def cleanup_figures() -> dict:
    """Seconds from SIGTERM to a sandbox's exit (everything gone by then), and from SIGKILL to
    the end of the reap that follows (owners.reap_orphans, as `lab status` runs it)."""
    import signal
    import subprocess
    from virtdeck.backends.lab.owners import base_dir, reap_orphans
    out = {}
    for sig in (signal.SIGTERM, signal.SIGKILL):
        ready = Path(tempfile.mkdtemp(prefix="vd-bench-cleanup-")) / "ready"
        p = subprocess.Popen([str(Path(sys.executable).with_name("virtdeck")), "lab", "sandbox", "--",
                              sys.executable, str(ROOT / "tests/lab/sandbox_inner.py"), str(ready)],
                             cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        try:
            while not ready.exists() and p.poll() is None:
                time.sleep(0.1)
            root = next(d for d in base_dir().glob("sandbox-*")
                        if json.loads((d / "owner.json").read_text())["pid"] == p.pid)
            t = time.monotonic()
            p.send_signal(sig)
            p.wait(timeout=120)
            if sig == signal.SIGKILL:
                reap_orphans(log=lambda m: None)
            out[f"{signal.Signals(sig).name.lower()}_to_all_gone_s"] = round(time.monotonic() - t, 2)
            out[f"{signal.Signals(sig).name.lower()}_left"] = root.exists()
        finally:
            if p.poll() is None:
                p.kill()
            shutil.rmtree(ready.parent, ignore_errors=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--hypervisors", type=int, default=2)
    ap.add_argument("--vcpus", type=int, default=1)
    ap.add_argument("--no-cold", action="store_true")
    ap.add_argument("--no-guest", action="store_true")
    ap.add_argument("--no-cleanup", action="store_true")
    ap.add_argument("--inner", action="store_true")
    args = ap.parse_args()
    if args.inner:
        inner(args)
        return 0
    if os.geteuid() != 0:
        print("bench_lab: needs root", file=sys.stderr)
        return 1
    from virtdeck.backends.lab.sandbox import run_sandboxed
    figures = image_figures(args)
    argv = [sys.executable, __file__, "--inner", "--runs", str(args.runs), "--hypervisors",
            str(args.hypervisors), "--vcpus", str(args.vcpus)] + (["--no-guest"] if args.no_guest else [])
    p = run_sandboxed(argv, capture=True, cwd=ROOT, timeout=3600)
    stray = p.stray
    line = [x for x in p.stdout.splitlines() if x.startswith("BENCH ")]
    if p.returncode != 0 or not line:
        print(p.stdout[-3000:], p.stderr[-3000:], file=sys.stderr)
        return 1
    figures.update(json.loads(line[0][6:]))
    figures["stray_processes_after_down"] = len(stray)
    if not args.no_cleanup:
        figures["cleanup"] = cleanup_figures()
    print(json.dumps(figures, indent=2))
    ups = figures["up_s"]
    print(f"\nlab up (image cached, N={args.hypervisors}): first {ups[0]:.2f} s, "
          f"median {statistics.median(ups):.2f} s over {len(ups)}; second up (nothing to do) "
          f"{figures['second_up_s']:.2f} s; down median {statistics.median(figures['down_s']):.2f} s")
    print(f"image build: cold {figures.get('image_cold_s', 'skipped')} s, cached {figures['image_cached_s']} s "
          f"({figures['image_qcow2_mib']} MiB qcow2)")
    print(f"control plane PSS (central + {args.hypervisors} hypervisors + outside, no guests): "
          f"{figures['pss_mib_total']} MiB")
    if "cleanup" in figures:
        c = figures["cleanup"]
        print(f"sandbox (1-hypervisor lab + 1 running guest) gone {c['sigterm_to_all_gone_s']} s after "
              f"SIGTERM; {c['sigkill_to_all_gone_s']} s from SIGKILL to the end of the reap")
    if "guest" in figures:
        g = figures["guest"]
        print(f"guest (TCG, {g['vcpus']} vCPU, 512 MiB): kernel {g['kernel_s']} s, runcmd marker "
              f"{g['runcmd_marker_s']} s, cloud-init done {g['cloud_init_done_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
