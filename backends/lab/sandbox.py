"""A private lab world: run a command in fresh network + mount namespaces where `virtdeck lab`
builds (and tears down) labs that never touch the machine's own lab.

:func:`run_sandboxed` ``(argv, timeout=None, capture=False) -> CompletedProcess`` runs ``argv`` as
``unshare --net --mount --propagation private -- sh -c 'ip link set lo up; mount -t tmpfs …
/run/netns; exec argv'`` with ``VIRTDECK_LAB_DIR`` pointing at a fresh directory under root's
data dir (not /tmp: sshd's StrictModes refuses keys below a world-writable directory). Inside,
the lab has the same names and addresses (192.168.100.0/24 …) as the real one — they live in
the sandbox's own network namespace, and the same identities: the lab key and the hosts' SSH
host keys are copied in, so known_hosts files made for the machine's lab fit. The template
cache is shared and is built *before*
entering (the sandbox has no route to the Debian mirror). Afterwards every process that shares a
network namespace with a holder the sandboxed lab recorded is stopped (by PID), the lab's
cgroups removed, and the directory deleted — whether or not the command took its lab down.

CLI: ``virtdeck lab sandbox -- CMD …`` (e.g. ``-- virtdeck lab up -n 3``, or a pytest run that
takes labs down and up).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import platformdirs

from .state import LabError, kill_pids
from .state import lab_dir as state_lab_dir

SCRIPT = ('set -e; ip link set lo up; mount -t tmpfs -o mode=0755 vd-sandbox /run/netns; '
          'exec "$@"')


def stop_sandbox_lab(lab_dir: Path) -> list[int]:
    """Stop every process sharing a network namespace with a holder recorded in ``lab_dir``'s
    state.json and remove its recorded cgroups; returns the PIDs that had to be stopped."""
    try:
        state = json.loads((lab_dir / "state.json").read_text())
    except (OSError, ValueError):
        return []
    inodes = set()
    for pid in state.get("holders", {}).values():
        try:
            inodes.add(os.stat(f"/proc/{pid}/ns/net").st_ino)
        except OSError:
            pass
    pids = []
    if inodes:
        for e in os.listdir("/proc"):
            if e.isdigit():
                try:
                    if os.stat(f"/proc/{e}/ns/net").st_ino in inodes:
                        pids.append(int(e))
                except OSError:
                    pass
    kill_pids(pids)
    from .hosts import remove_cgroups
    for dirs in state.get("cgroups", {}).values():
        remove_cgroups(dirs)
    return pids


def run_sandboxed(argv: list[str], *, timeout: float | None = None, capture: bool = False,
                  cwd: str | os.PathLike | None = None, env: dict | None = None):
    """Run ``argv`` in a sandbox (see module doc). Returns the CompletedProcess with an extra
    attribute ``stray``: PIDs left running by the command's lab (should be [])."""
    if os.geteuid() != 0:
        raise LabError("the lab sandbox needs root: run it with sudo")
    from .image import ensure_template
    ensure_template(log=lambda m: None)
    base = Path(platformdirs.user_data_dir("virtdeck"))
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="sandbox-", dir=base))
    lab_dir = root / "lab"
    # Same identities as the machine's lab (lab key, hosts' SSH host keys): a client holding
    # the machine lab's known_hosts / inventory talks to the sandbox's hosts without a
    # "host key changed" refusal.
    outer = state_lab_dir()
    lab_dir.mkdir(parents=True)
    for name in ("id_ed25519", "id_ed25519.pub"):
        if (outer / name).exists():
            shutil.copy2(outer / name, lab_dir / name)
    if (outer / "hostkeys").is_dir():
        shutil.copytree(outer / "hostkeys", lab_dir / "hostkeys")
    full_env = dict(os.environ if env is None else env, VIRTDECK_LAB_DIR=str(lab_dir))
    try:
        proc = subprocess.run(["unshare", "--net", "--mount", "--propagation", "private", "--",
                               "sh", "-c", SCRIPT, "sh", *argv], env=full_env, cwd=cwd,
                              timeout=timeout, capture_output=capture, text=True)
    finally:
        stray = stop_sandbox_lab(lab_dir)
        shutil.rmtree(root, ignore_errors=True)
    proc.stray = stray
    return proc
