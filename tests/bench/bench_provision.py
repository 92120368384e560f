#!/usr/bin/env python3
"""VM create figures on the lab (no guest boot). Prints figures; asserts nothing.

    .venv/bin/python tests/bench/bench_provision.py [--vms 6] [--hosts 1000]

1. placement: :func:`backends.scheduler.place` over ``--hosts`` synthetic hosts (pure function),
   median of 20 runs;
2. ``create_vm`` with ``start=False`` for ``--vms`` VMs one after the other, then the same number
   in parallel (threads): per-step medians and wall time, and how the parallel creates spread
   over the hypervisors (the reservation ledger keeps them from piling on one host);
3. rollback: a failure injected after ``define``, time to undo everything.
Everything it makes (tenant ``bench4-*``) is removed at the end.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from virtdeck.backends import scheduler  # noqa: E402
from virtdeck.backends.ovn import networks as ovn_networks, security_groups as ovn_sg
from virtdeck.backends.lab.state import lab_dir  # noqa: E402
from virtdeck.backends.session import Session  # noqa: E402
from virtdeck.config.inventory import load  # noqa: E402
from virtdeck.console import cloudinit  # noqa: E402
from virtdeck.console.services import provision as pv  # noqa: E402
from provision_helpers import remove_vm  # noqa: E402


def bench_place(n: int) -> None:
    hosts = [scheduler.HostFacts(f"hv{i}", cores=32, ram_total_mib=262144, ram_free_mib=200000,
                                 alloc_vcpus=i % 97, alloc_ram_mib=(i * 131) % 100000,
                                 physnets=frozenset({"physnet1"})) for i in range(n)]
    req = scheduler.PlacementRequest(vcpus=4, ram_mib=8192, physnets=frozenset({"physnet1"}))
    runs = []
    for _ in range(20):
        t = time.perf_counter()
        scheduler.place(hosts, req)
        runs.append(time.perf_counter() - t)
    print(f"placement over {n} hosts: median {statistics.median(runs) * 1000:.2f} ms")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vms", type=int, default=6)
    ap.add_argument("--hosts", type=int, default=1000)
    args = ap.parse_args()
    bench_place(args.hosts)

    inv = load(lab_dir() / "inventory.toml")
    tmp = Path(tempfile.mkdtemp())
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / "id")], check=True)
    key = (tmp / "id.pub").read_text().strip()
    pw = cloudinit.hash_password("bench-password")
    tenant = f"bench4-{uuid.uuid4().hex[:4]}"
    made: list[str] = []
    with Session(inv) as s:
        nb = s.nb()
        ovn_networks.create_network(nb, ovn_networks.NetworkSpec(
            tenant=tenant, name="net1", kind="overlay", cidr="10.249.0.0/24", gateway="10.249.0.1"))

        def req(i, **kw):
            name = f"b4-{uuid.uuid4().hex[:6]}"
            made.append(name)
            return pv.VmRequest(name=name, tenant=tenant, template="debian12", vcpus=1, ram_mib=128,
                                disk_gib=3, networks=("net1",), ssh_keys=(key,), password_hash=pw,
                                start=False, **kw)
        try:
            steps: dict[str, list[float]] = {}
            t0 = time.perf_counter()
            for i in range(args.vms):
                r = pv.create_vm(s, inv, req(i))
                for k, v in r.timings.items():
                    steps.setdefault(k, []).append(v)
            seq = time.perf_counter() - t0
            print(f"sequential: {args.vms} creates (no boot) in {seq:.2f} s ({seq / args.vms:.2f} s each)")
            print("  per-step medians: " + ", ".join(f"{k} {statistics.median(v) * 1000:.0f} ms"
                                                     for k, v in steps.items()))
            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.vms) as pool:
                results = list(pool.map(lambda i: pv.create_vm(s, inv, req(i)), range(args.vms)))
            par = time.perf_counter() - t0
            spread = Counter(r.host for r in results)
            print(f"parallel: {args.vms} creates in {par:.2f} s; hosts: "
                  + ", ".join(f"{h}={n}" for h, n in sorted(spread.items())))

            def boom(phase, step, ctx):
                if phase == "after" and step == "define":
                    raise RuntimeError("injected")
            t0 = time.perf_counter()
            try:
                pv.create_vm(s, inv, req(0), hook=boom)
            except pv.CreateError:
                pass
            print(f"create to define + rollback of everything: {time.perf_counter() - t0:.2f} s")
        finally:
            for name in made:
                remove_vm(s, inv, tenant, name)
            ovn_networks.delete_network(nb, tenant, "net1", cascade=True)
            for sg in ovn_sg.list_security_groups(nb, tenant):
                ovn_sg.delete_security_group(nb, tenant, sg.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
