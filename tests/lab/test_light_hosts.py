"""Light hypervisors (`virtdeck lab up --light N`): listed by the console's CLI with their
domain counts, plainly "no OVN" in `host check`, refused by placement, known to `lab status`,
and gone after `lab down` — in a sandbox (tests/lab/light_inner.py), never on the shared lab.

Cost: ~10-25 s (lab up with 1 full + 3 light hypervisors, the standalone OVN flavour; no
guest boots). Whatever the inner run leaves is stopped by the sandbox, and reported here.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab
HERE = Path(__file__).resolve().parent


def test_light_hosts_listed_checked_and_torn_down():
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    from virtdeck.backends.lab.sandbox import run_sandboxed
    p = run_sandboxed([sys.executable, str(HERE / "light_inner.py")], capture=True, timeout=600,
                      cwd=HERE.parent.parent, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    assert p.returncode == 0 and lines, p.stdout[-3000:] + p.stderr[-3000:]
    out = json.loads(lines[-1])
    print(out)
    assert out["up_rc"] == 0, out["up_tail"]
    # the console's listing sees every hypervisor, light ones with the domains defined there
    assert out["list_rc"] == 0, out["hosts"]
    assert out["hosts"]["hv1"]["state"] == "up"
    assert {h: out["hosts"][h] for h in ("lh1", "lh2", "lh3")} == {
        "lh1": {"state": "up", "vms": 1}, "lh2": {"state": "up", "vms": 2},
        "lh3": {"state": "up", "vms": 3}}
    # host check: a host without OVN by design is not a broken one
    facts = dict(out["check"])
    assert out["check_rc"] == 0 and facts.get("ovn") == "ok", out["check"]
    assert not {"br-int", "ovn-controller", "sb chassis"} & set(facts), out["check"]
    assert all(s == "ok" for s in facts.values()), out["check"]
    # placement: every VM has an OVN network, so a light host is refused, saying why
    assert out["net_rc"] == 0 and out["place_rc"] == 0, out["place"]
    assert out["place"]["hv1"][0] == "chosen", out["place"]
    for h in ("lh1", "lh2", "lh3"):
        assert out["place"][h][0] == "refused" and out["place"][h][1].startswith("ovn: no OVN"), out["place"]
    st = out["status"]
    assert st["rc"] == 0 and st["ready"] and st["light"] == 3, st
    assert {"lh1 host", "lh2 sshd", "lh3 libvirtd"} <= set(st["checks"]), st
    # lab down: nothing of the light hosts is left, and the sandbox had nothing to sweep
    assert out["light_pids"] >= 3 * 3, out      # holder, virtlogd, libvirtd, sshd per host
    assert out["down_rc"] == 0 and out["survivors"] == [] and out["netns_left"] == [], out
    assert p.stray == [], f"the sandboxed lab left processes behind: {p.stray}"
