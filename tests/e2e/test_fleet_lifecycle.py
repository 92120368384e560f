"""Issue 11's done-when, end to end: a VM's whole life as the fleet's NON-ROOT operator (`vdop`,
in the hypervisor's `libvirt` group, no sudo) on hv2, the hypervisor reached only through the
bastion (ProxyJump on port 2222), every host named by its ~/.ssh/config alias — on a fleet lab
(`virtdeck lab up --fleet`) inside `virtdeck lab sandbox` (the shared lab is never touched).

create (seed + overlay uploaded through libvirt streams, the placement lock and the owner mark
as vdop, ports in the NB over TCP) → boot (Debian 12 + cloud-init under TCG) → cloud-init done
(its marker on the serial log, read by the lab as root: the log is virtlogd's) → the serial
console as vdop (`vm console` from a pipe: libvirtd connects it to the guest) → delete (no domain,
volume or port left). Figures printed: submit → running, boot → cloud-init done.

Cost in CI: one sandbox fleet lab (~10 s) and one TCG guest boot (60-230 s by load).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.slow]

INNER = os.environ.get("VIRTDECK_FLEET_INNER") == "1"
VIRTDECK = str(Path(sys.executable).with_name("virtdeck"))
BOOT_TIMEOUT = 600  # s: a TCG boot takes 60-90 s idle, up to ~230 s with other guests booting


def test_fleet_vm_lifecycle_as_the_operator_in_a_sandbox(capsys):
    if INNER:
        pytest.skip("this is the sandbox's own run")
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    from virtdeck.backends.lab.image import ensure_template
    from virtdeck.backends.lab.sandbox import run_sandboxed
    ensure_template(log=lambda m: None)  # built outside: the sandbox has no route to the mirror
    here = Path(__file__).resolve()
    script = (f"virtdeck lab up --fleet > \"$VIRTDECK_LAB_DIR/up.log\" 2>&1 "
              f"|| {{ cat \"$VIRTDECK_LAB_DIR/up.log\"; exit 99; }}; "
              f"{sys.executable} -m pytest -q -s -p no:cacheprovider -rs {here} -k inner; rc=$?; "
              f"virtdeck lab down >/dev/null 2>&1; exit $rc")
    env = dict(os.environ, VIRTDECK_FLEET_INNER="1", VIRTDECK_LAB_KEEP="",
               PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    p = run_sandboxed(["sh", "-c", script], capture=True, timeout=1500, cwd=here.parents[2], env=env)
    with capsys.disabled():
        print("\n" + "\n".join(ln for ln in p.stdout.splitlines() if ln.startswith("[fleet")))
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-3000:]
    assert p.stray == [], f"the sandboxed lab left processes behind: {p.stray}"


def op(*args: str, input: str | bytes | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``virtdeck ARGS`` as the fleet's operator (HOME = the fleet's: its ssh_config, inventory)."""
    from virtdeck.backends.lab import fleet
    return subprocess.run([VIRTDECK, *args], capture_output=True, input=input, timeout=timeout,
                          env=fleet.operator_env(), text=not isinstance(input, bytes))


def serial_log(host: str, path: str) -> str:
    from virtdeck.backends.lab.hosts import run_in
    return run_in(host, ["cat", path], check=False).stdout


@pytest.mark.skipif(not INNER, reason="runs inside the fleet sandbox")
def test_inner_create_boot_cloud_init_console_delete_on_hv2():
    from virtdeck.backends.lab import fleet
    from virtdeck.backends.lab.hosts import libvirt_uri
    from virtdeck.console import cloudinit
    name = f"fleet-e2e-{uuid.uuid4().hex[:4]}"
    p = op("network", "create", "net1", "--tenant", "demo", "--cidr", "10.49.0.0/24")
    assert p.returncode == 0, p.stdout + p.stderr
    t0 = time.monotonic()
    p = op("vm", "create", name, "--tenant", "demo", "--template", "debian12", "--memory", "512",
           "--disk", "4", "--network", "net1", "--host", "hv2", "--password-hash", "$6$salt$" + "x" * 86,
           "--ssh-key", str(fleet.home() / ".ssh" / "id_ed25519.pub"), "--json")
    assert p.returncode == 0, p.stdout + p.stderr
    res = json.loads(p.stdout)
    assert res["host"] == "hv2" and res["running"] is True

    pat = re.compile(re.escape(cloudinit.DONE_MARKER) + r" after ([0-9.]+) s")
    out, m = "", None
    while time.monotonic() - t0 < BOOT_TIMEOUT and not m:
        time.sleep(3)
        out = serial_log("hv2", res["serial_log"])
        m = pat.search(out)
    assert m, f"no cloud-init marker after {BOOT_TIMEOUT} s; serial log tail:\n{out[-2000:]}"
    print(f"\n[fleet e2e] {name} on hv2 as vdop through the bastion: submit→running "
          f"{res['submit_to_running_s']:.2f} s; boot→cloud-init done {float(m.group(1)):.1f} s guest uptime "
          f"({time.monotonic() - t0:.0f} s wall)")

    # libvirtd attached vdop to the guest's console (its stream, through the libvirt group's
    # socket); whether the guest's getty answers the newline within the 1.5 s quiet time under
    # TCG is the guest's business, so it is printed, not asserted.
    c = op("vm", "console", name, input=b"\r\n", timeout=60)
    assert c.returncode == 0 and b"Traceback" not in c.stderr, c.stderr
    assert f"Connected to domain '{name}'".encode() in c.stdout, c.stdout[-500:]
    print(f"[fleet e2e] vm console as vdop: connected; the guest answered a login prompt: {b'login:' in c.stdout}")

    d = op("vm", "delete", name, "--yes")
    assert d.returncode == 0, d.stdout + d.stderr
    import libvirt
    conn = libvirt.open(libvirt_uri("hv2"))
    try:
        assert name not in [x.name() for x in conn.listAllDomains(0)]
        pool = conn.storagePoolLookupByName("virtdeck")
        pool.refresh(0)
        assert [v.name() for v in pool.listAllVolumes(0) if v.name().startswith(name)] == []
    finally:
        conn.close()
    from virtdeck.backends.lab import central  # tcp or the ssl member list, by the lab's flavour
    lsps = central.ctl("nb", ["--bare", "--columns=external_ids", "list", "Logical_Switch_Port"],
                       timeout=20, check=False)
    assert lsps.returncode == 0 and name not in lsps.stdout, lsps.stderr  # no port of the VM left
    assert op("network", "delete", "net1", "--tenant", "demo").returncode == 0
