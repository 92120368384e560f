"""Run inside a sandbox by tests/faults/test_power_guest.py (not collected): a 1-hypervisor lab
with the current template (dbus and acpid in it), one booted guest, then `vm reboot` and
`vm shutdown` through the services the CLI calls. Prints one JSON line:
``{"up_s", "boot_s", "reboot": OpResult dict or error, "shutdown": …, "reboot_s", "shutdown_s"}``.

    python tests/faults/power_inner.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: guests.py, probes.py


def second_boot(session, host: str, log: str, timeout: float = 300.0) -> float | None:
    """Seconds until cloud-init's final message shows a second time on the serial log (the
    rebooted guest is up again; QEMU appends across a reset), None after ``timeout``."""
    from virtdeck.console import cloudinit
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if session.run(host, ["cat", log], timeout=20).stdout.count(cloudinit.DONE_MARKER) >= 2:
            return round(time.monotonic() - t0, 1)
        time.sleep(2)
    return None


def main() -> None:
    out: dict = {}
    t0 = time.monotonic()
    try:
        run(out, t0)
    finally:
        from virtdeck.backends.lab.down import down
        down(log=lambda m: None)  # the sandbox's own lab: nothing of it outlives the run
    print(json.dumps(out), flush=True)


def run(out: dict, t0: float) -> None:
    from virtdeck.backends.lab.state import lab_dir
    from virtdeck.backends.lab.up import up
    from virtdeck.backends.ovn import networks as ovn_networks
    from virtdeck.backends.session import Session
    from virtdeck.config.inventory import load
    from virtdeck.console.cloudinit import hash_password
    from virtdeck.console.errors import VirtdeckError
    from virtdeck.console.services import provision, vm_power
    from guests import wait_cloud_init

    up(1, log=lambda m: None)
    out["up_s"] = round(time.monotonic() - t0, 1)
    inv = load(lab_dir() / "inventory.toml")
    with Session(inv) as s:
        ovn_networks.create_network(s.nb(), ovn_networks.NetworkSpec(
            tenant="demo", name="pwnet", kind="overlay", cidr="10.78.0.0/24", gateway="10.78.0.1"))
        res = provision.create_vm(s, inv, provision.VmRequest(
            name="pw1", tenant="demo", template="debian12", vcpus=1, ram_mib=512, disk_gib=3,
            networks=("pwnet",), ssh_keys=("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl pw",),
            password_hash=hash_password("unused-password-1"), host="hv1"))
        _, out["boot_s"] = wait_cloud_init(s, res.host, res.serial_log)
        for verb, call in (("reboot", lambda: vm_power.reboot(s, "pw1", timeout=180)),
                           ("shutdown", lambda: vm_power.shutdown(s, "pw1", timeout=180))):
            t = time.monotonic()
            try:
                out[verb] = call().as_dict()
            except VirtdeckError as exc:
                out[verb] = {"error": str(exc), "type": type(exc).__name__}
            out[f"{verb}_s"] = round(time.monotonic() - t, 1)
            if verb == "reboot":  # the guest must be up again (logind running) before the shutdown
                out["reboot_boot_s"] = second_boot(s, res.host, res.serial_log)


if __name__ == "__main__":
    main()
