"""Concurrent creates from different PROCESSES (two consoles / operators) on the lab: the host's
placement lock (backends/hostlock.py, flock on the hypervisor over SSH) keeps the last slot from
being taken twice.

The race is forced: each process waits at a barrier after `validate`, so both read the host's
facts at the same moment, and holds for 2 s after `placement` — long enough for the other to
define if nothing stopped it. A control run with the lock switched off shows both win then.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest

from virtdeck.backends import hostlock
from virtdeck.backends.ovn import networks as ovn_networks, security_groups as ovn_sg
from virtdeck.config.inventory import save
from virtdeck.console import cloudinit
from virtdeck.console.errors import HostError
from virtdeck.console.services import placement
from virtdeck.console.services import provision as pv
from provision_helpers import _lab_inventory, lab_inventory, lab_session, remove_vm, roomy  # noqa: F401

pytestmark = pytest.mark.lab

HERE = os.path.dirname(__file__)
ROOT = os.path.dirname(HERE)

RACER = textwrap.dedent("""
    import json, os, sys, time
    from virtdeck.config.inventory import load
    from virtdeck.backends.session import Session
    from virtdeck.console.services import provision as pv
    inv_path, name, tenant, key, pw_hash, barrier, locked = sys.argv[1:8]
    if locked == "0":
        class _NoLock:
            waited = 0.0
            def release(self): pass
        pv.hostlock.acquire = lambda *a, **k: _NoLock()

    def hook(phase, step, ctx):
        if phase == "after" and step == "validate":
            open(barrier + "." + name, "w").close()
            end = time.monotonic() + 60
            while len([f for f in os.listdir(os.path.dirname(barrier)) if f.startswith(os.path.basename(barrier) + ".")]) < 2:
                if time.monotonic() > end:
                    raise SystemExit("barrier timed out")
                time.sleep(0.02)
        if phase == "after" and step == "placement":
            time.sleep(2.0)

    inv = load(inv_path)
    req = pv.VmRequest(name=name, tenant=tenant, template="debian12", vcpus=2, ram_mib=256, disk_gib=3,
                       networks=("net1",), ssh_keys=(key,), password_hash=pw_hash, host="hv1", start=False)
    s = Session(inv)
    try:
        r = pv.create_vm(s, inv, req, hook=hook)
        out = {"won": True, "host": r.host, "placement": r.timings.get("placement")}
    except pv.CreateError as exc:
        out = {"won": False, "step": exc.step, "error": str(exc)}
    s.close()
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def real_inventory(request):
    return _lab_inventory(request)


@pytest.fixture(scope="module")
def tenant(lab_session):
    t = f"tr{uuid.uuid4().hex[:6]}"
    nb = lab_session.nb()
    ovn_networks.create_network(nb, ovn_networks.NetworkSpec(
        tenant=t, name="net1", kind="overlay", cidr="10.48.0.0/24", gateway="10.48.0.1"))
    yield t
    ovn_networks.delete_network(nb, t, "net1", cascade=True)
    for pg in ovn_sg.list_security_groups(nb, t):
        ovn_sg.delete_security_group(nb, t, pg.name)


def test_lock_serialises_and_dies_with_the_connection(real_inventory):
    from virtdeck.backends.session import Session
    a, b = Session(real_inventory), Session(real_inventory)
    try:
        first = hostlock.acquire(a, "hv1")
        threading.Timer(1.0, first.release).start()
        second = hostlock.acquire(b, "hv1", wait=20)
        assert second.waited >= 0.7, second.waited  # it had to wait for the first
        with hostlock.acquire(a, "hv2", wait=5) as other:  # one lock per host
            assert other.waited < 5
        with pytest.raises(HostError, match="hv1: cannot take the placement lock: another create held it"):
            hostlock.acquire(a, "hv1", wait=1)
        b.close()  # the holder's SSH connection goes: so does its lock
        t0 = time.monotonic()
        hostlock.acquire(a, "hv1", wait=20).release()
        assert time.monotonic() - t0 < 10
    finally:
        a.close()
        b.close()


def _race(tmp_path, inv_path, tenant, key, pw_hash, locked: bool) -> list[dict]:
    names = [f"race-{uuid.uuid4().hex[:5]}" for _ in range(2)]
    barrier = str(tmp_path / f"barrier-{uuid.uuid4().hex[:4]}")
    env = dict(os.environ, PYTHONPATH=ROOT, VIRTDECK_AUDIT_LOG=str(tmp_path / "audit.jsonl"))
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(inv_path), n, tenant, key, pw_hash, barrier,
                               "1" if locked else "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=ROOT) for n in names]
    outs = []
    for n, p in zip(names, procs):
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0 and out.strip(), (n, out, err[-3000:])
        outs.append(dict(json.loads(out.strip().splitlines()[-1]), name=n))
    return outs


def test_two_processes_race_for_the_last_slot(lab_session, real_inventory, tenant, tmp_path):
    """hv1 has room for exactly 3 more vCPUs; two processes each create a 2-vCPU VM pinned to it."""
    snap = placement.host_snapshot(lab_session, real_inventory.host("hv1"), real_inventory.template("debian12"))
    ratio = (snap.facts.alloc_vcpus + 3) / snap.facts.cores
    if int(snap.facts.cores * ratio) - snap.facts.alloc_vcpus != 3:
        pytest.skip("cannot make exactly 3 vCPUs of room with a float ratio here")
    inv_path = save(roomy(real_inventory, cpu_ratio=ratio), tmp_path / "inventory.toml")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "id")], check=True)
    key = (tmp_path / "id.pub").read_text().strip()
    pw_hash = cloudinit.hash_password("race-pass")
    made: list[str] = []
    try:
        # Control: without the host lock, the forced race oversubscribes hv1 (both win).
        control = _race(tmp_path, inv_path, tenant, key, pw_hash, locked=False)
        made += [o["name"] for o in control]
        assert [o["won"] for o in control] == [True, True], control
        for n in made:
            remove_vm(lab_session, real_inventory, tenant, n)
        # With the lock: exactly one wins, the other is refused at placement with the reason.
        outs = _race(tmp_path, inv_path, tenant, key, pw_hash, locked=True)
        made += [o["name"] for o in outs]
        wins = [o for o in outs if o["won"]]
        losses = [o for o in outs if not o["won"]]
        assert len(wins) == 1 and len(losses) == 1, outs
        assert losses[0]["step"] == "placement" and "hv1: vcpus:" in losses[0]["error"], losses
        assert "another console took hv1 meanwhile" in losses[0]["error"], losses
        print(f"\nwinner placement step {wins[0]['placement']:.2f} s (includes the 2 s hold)")
    finally:
        for n in made:
            remove_vm(lab_session, real_inventory, tenant, n)
