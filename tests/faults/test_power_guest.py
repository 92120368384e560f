"""`vm reboot` and `vm shutdown` on a real guest that acts on the ACPI power button (issue 16
item 10): the lab template now carries dbus and acpid, so systemd-logind powers off on the
button. In a sandbox lab of its own (it builds the new template if the cache has the old one;
the shared lab keeps its template until its next `lab up`).

Cost: 3-4 min (measured: guest boot 63-141 s, reboot back after 4.4-7.4 s and up again 63-77 s later,
shutdown 5.6-7.3 s).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.faults]
HERE = Path(__file__).resolve().parent


def test_reboot_and_shutdown_report_what_the_guest_did():
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    from virtdeck.backends.lab.sandbox import run_sandboxed
    env = dict(os.environ, VIRTDECK_LAB_KEEP="", PYTHONDONTWRITEBYTECODE="1")
    p = run_sandboxed([sys.executable, str(HERE / "power_inner.py")], capture=True, timeout=1500,
                      cwd=HERE.parent.parent, env=env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-5000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"\npower report: lab up {out['up_s']} s, boot {out['boot_s']:.0f} s, reboot verb {out['reboot_s']} s "
          f"({out['reboot']}), up again after {out.get('reboot_boot_s')} s, shutdown verb {out['shutdown_s']} s "
          f"({out['shutdown']})")
    reboot, shutdown = out["reboot"], out["shutdown"]
    assert reboot.get("outcome") == "ok", reboot
    assert "rebooted: the guest went down" in reboot["message"] and "came back (reset)" in reboot["message"]
    assert 0 < reboot["details"]["back_s"] < 180
    assert out.get("reboot_boot_s"), "the guest did not come up again after the reboot"
    assert shutdown.get("outcome") == "ok" and not shutdown["details"].get("forced"), shutdown
    assert "shut down after" in shutdown["message"]
    assert p.stray == [], f"the sandboxed lab left processes behind: {p.stray}"
