"""Lab down/up cycles (N = 3, N = 2), repair and refusals — run in a sandbox.

The cycle tests (tests/lab/cycle_inner.py) take a lab down. To never disturb the lab this
session and other people use, they run in a child pytest inside fresh network and mount
namespaces (``unshare --net --mount``) with a private /run/netns and a lab dir of their own
(``VIRTDECK_LAB_DIR``, under root's data dir: sshd's StrictModes refuses keys below /tmp): the
same code builds and destroys complete labs there; the template image cache is shared (and
built before entering the sandbox, which has no route to the Debian mirror).
Whatever the child leaves (it should leave nothing) is stopped by the PIDs its state recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import platformdirs
import pytest

from backends.lab.state import kill_pids

pytestmark = pytest.mark.lab
HERE = Path(__file__).resolve().parent


def _stop_sandbox(lab_dir: Path) -> list[int]:
    """Stop every process sharing a network namespace with a holder recorded in the sandbox."""
    try:
        holders = json.loads((lab_dir / "state.json").read_text()).get("holders", {})
    except (OSError, ValueError):
        return []
    inodes = set()
    for pid in holders.values():
        try:
            inodes.add(os.stat(f"/proc/{pid}/ns/net").st_ino)
        except OSError:
            pass
    pids = []
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                if os.stat(f"/proc/{e}/ns/net").st_ino in inodes:
                    pids.append(int(e))
            except OSError:
                pass
    kill_pids(pids)
    return pids


def test_down_up_cycles_in_a_sandbox():
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    # The sandbox has no route to the Debian mirror: build the template out here if needed.
    from backends.lab.image import ensure_template
    ensure_template(log=lambda m: None)
    base = Path(platformdirs.user_data_dir("virtdeck"))
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="sandbox-", dir=base))
    lab_dir = root / "lab"
    env = dict(os.environ, VIRTDECK_LAB_DIR=str(lab_dir), VIRTDECK_LAB_KEEP="",
               PYTHONDONTWRITEBYTECODE="1")
    script = (
        "set -e; ip link set lo up; mount -t tmpfs -o mode=0755 vd-sandbox /run/netns; "
        f"exec {sys.executable} -m pytest -q -rs -p no:cacheprovider {HERE / 'cycle_inner.py'}"
    )
    try:
        p = subprocess.run(["unshare", "--net", "--mount", "--propagation", "private", "--",
                            "sh", "-c", script], capture_output=True, text=True, env=env,
                           cwd=HERE.parent.parent, timeout=1200)
    finally:
        stray = _stop_sandbox(lab_dir)
        shutil.rmtree(root, ignore_errors=True)
    print(p.stdout[-5000:], p.stderr[-2000:])
    assert p.returncode == 0, p.stdout[-5000:] + p.stderr[-2000:]
    assert " passed" in p.stdout and "skipped" not in p.stdout.splitlines()[-1]
    assert stray == [], f"the sandboxed lab left processes behind: {stray}"
