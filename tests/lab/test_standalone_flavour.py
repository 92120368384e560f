"""The standalone OVN flavour (`virtdeck lab up --ovn standalone`: one NB and one SB ovsdb-server
on plain tcp, reached over SSH to central's unix sockets) keeps working now that cluster-ssl is
the default the rest of the suite runs on. In a sandbox (the shared lab never changes flavour):
a 2-hypervisor standalone lab, then the flavour-aware lab tests that take the `via_host` routes
— readiness (tcp NB and central's socket, the inventory, one northd restarted by `up`), the
console following virsh and ovn-nbctl, the live model over central's NB socket, the SB through
its socket forwarded over SSH, `host check`'s SB remote. No guest boots: ~2 min on this machine.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab
TESTS = Path(__file__).resolve().parents[1]
INNER = [
    "lab/test_lab_ready.py",
    "test_console_lab_ui.py::test_screen_follows_virsh_and_ovn_nbctl",
    "test_console_live.py::test_lab_live_domains_and_switches_follow_within_1s",
    "test_southbound.py::test_lab_southbound_claims_every_hypervisor",
    "test_host_check.py::test_healthy_lab_hosts_are_all_ok",
]


def test_standalone_lab_in_a_sandbox():
    if os.environ.get("VIRTDECK_STANDALONE_INNER") == "1":
        pytest.skip("this is the sandbox's own run")
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    from virtdeck.backends.lab.sandbox import run_sandboxed
    tests = " ".join(str(TESTS / t) for t in INNER)
    # the lab fixture reuses the ready standalone lab (and leaves it up); down is ours
    script = (f"virtdeck lab up --ovn standalone -n 2 > \"$VIRTDECK_LAB_DIR/up.log\" 2>&1 "
              f"|| {{ cat \"$VIRTDECK_LAB_DIR/up.log\"; exit 99; }}; "
              f"grep -q '\"ovn\": \"standalone\"' \"$VIRTDECK_LAB_DIR/state.json\" || exit 98; "
              f"{sys.executable} -m pytest -q -p no:cacheprovider -rs -m 'not slow' {tests}; rc=$?; "
              f"virtdeck lab down >/dev/null 2>&1; exit $rc")
    env = dict(os.environ, VIRTDECK_STANDALONE_INNER="1", VIRTDECK_LAB_KEEP="",
               PYTHONDONTWRITEBYTECODE="1",
               PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    p = run_sandboxed(["sh", "-c", script], capture=True, timeout=1200, cwd=TESTS.parent, env=env)
    print(p.stdout[-4000:], p.stderr[-2000:])
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-3000:]
    last = p.stdout.strip().splitlines()[-1]
    assert " passed" in last and "failed" not in last and "skipped" not in last, last
    assert p.stray == [], f"the sandboxed lab left processes behind: {p.stray}"
