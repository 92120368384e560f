"""Run inside a sandbox by tests/lab/test_light_hosts.py (no test_ prefix: not collected).

Brings up central + 1 full hypervisor + 3 light ones (`virtdeck lab up -n 1 --light 3`, the
standalone OVN flavour: the cheapest central), defines 1, 2 and 3 shut-off domains on lh1, lh2,
lh3 (through each host's libvirt socket, as another operator's virsh would), then, as an
operator does, through the CLI: `virtdeck host list --json`, `virtdeck host check lh2 --json`,
an overlay network and `virtdeck vm create --dry-run` (placement), `virtdeck lab status`; records the PIDs in the light hosts' namespaces, runs `virtdeck
lab down` and checks which of them survive. Prints one JSON line (the outer test judges it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VIRTDECK = str(ROOT / ".venv" / "bin" / "virtdeck")

XML = """<domain type='qemu'><name>{name}</name><uuid>{uuid}</uuid>
<memory unit='MiB'>32</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os>
<devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices></domain>"""


# A SHA-512 crypt string by shape ($6$salt$ + 86 characters): the dry run checks it, logs nothing
HASH = "$6$ltsalt$" + "x" * 86


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([VIRTDECK, *args], capture_output=True, text=True, timeout=300)


def _state(pid: int) -> str | None:
    """The process state letter (R, S, Z, …) of ``pid``, None when it is gone; a zombie has
    ended (only its exit status waits for its parent)."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def main() -> None:
    import libvirt

    from virtdeck.backends.lab import netns as N
    from virtdeck.backends.lab import topology as topo
    from virtdeck.backends.lab.hosts import libvirt_uri
    libvirt.registerErrorHandler(lambda *_: None, None)
    out: dict = {}
    t0 = time.monotonic()
    p = cli("lab", "up", "-n", "1", "--light", "3", "--ovn", "standalone")
    out["up_s"] = round(time.monotonic() - t0, 1)
    out["up_rc"], out["up_tail"] = p.returncode, (p.stdout + p.stderr)[-1500:]
    if p.returncode:
        print(json.dumps(out))
        return
    for i, h in enumerate(topo.lights(3), start=1):
        conn = libvirt.open(libvirt_uri(h.name))
        for k in range(i):
            conn.defineXML(XML.format(name=f"lt-{h.name}-{k}", uuid=uuid.uuid4()))
        conn.close()
    p = cli("host", "list", "--json")
    out["list_rc"] = p.returncode
    out["hosts"] = {h["name"]: {"state": h["state"], "vms": h["vms"]}
                    for h in json.loads(p.stdout)["hosts"]} if p.returncode == 0 else p.stderr[-800:]
    p = cli("host", "check", "lh2", "--json")
    out["check_rc"] = p.returncode
    out["check"] = ([(line["fact"], line["status"]) for line in json.loads(p.stdout)["hosts"][0]["lines"]]
                    if p.stdout.strip().startswith("{") else (p.stdout + p.stderr)[-800:])
    # placement: a VM (every VM has an OVN network) never lands on a light host
    from virtdeck.config import inventory as inv_mod
    from virtdeck.config.paths import lab_dir
    tpl = inv_mod.load(lab_dir() / "inventory.toml").templates[0].name
    p = cli("network", "create", "ltnet", "--tenant", "demo", "--cidr", "10.77.0.0/24")
    out["net_rc"] = p.returncode
    p = cli("vm", "create", "ltvm", "--tenant", "demo", "--template", tpl, "--network", "ltnet",
            "--memory", "128", "--ssh-key", str(lab_dir() / "id_ed25519.pub"),
            "--password-hash", HASH, "--dry-run", "--json")
    out["place_rc"] = p.returncode
    out["place"] = ({r["host"]: [r["verdict"], *r["reasons"]] for r in json.loads(p.stdout)["placement"]}
                    if p.stdout.strip().startswith("{") else (p.stdout + p.stderr)[-1500:])
    p = cli("--json", "lab", "status")
    st = json.loads(p.stdout) if p.stdout.strip().startswith("{") else {}
    out["status"] = {"rc": p.returncode, "ready": st.get("ready"), "light": st.get("light"),
                     "checks": [c["name"] for c in st.get("checks", []) if c["name"].startswith("lh")]}
    pids = {h.netns: N.netns_pids(h.netns) for h in topo.lights(3)}
    out["light_pids"] = sum(len(v) for v in pids.values())
    p = cli("lab", "down")
    out["down_rc"] = p.returncode
    out["survivors"] = [(pid, _state(pid)) for v in pids.values() for pid in v if _state(pid) not in (None, "Z")]
    out["zombies"] = sum(1 for v in pids.values() for pid in v if _state(pid) == "Z")
    out["netns_left"] = [ns for ns in N.list_netns() if ns.startswith("vd-lh")]
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
