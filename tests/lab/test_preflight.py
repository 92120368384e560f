"""`lab up` refusals that need no lab: missing packages, bad N (one line each, no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

VIRTDECK = str(Path(sys.executable).with_name("virtdeck"))


@pytest.mark.skipif(os.geteuid() != 0, reason="preflight checks root first")
def test_missing_tools_name_their_packages(tmp_path):
    # A PATH without /usr/bin: ssh, virsh, qemu-img, … are "missing" (sbin tools stay visible).
    env = dict(os.environ, PATH=str(tmp_path))
    p = subprocess.run([sys.executable, "-c", "from virtdeck.console.cli import main; raise SystemExit(main(['lab', 'up']))"],
                       capture_output=True, text=True, env=env, cwd=Path(__file__).parents[2], timeout=60)
    assert p.returncode == 1
    line = p.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert line.startswith("virtdeck: missing packages: ")
    assert "openssh-client" in line and "libvirt-clients" in line and "bash .ci/setup" in line


def test_hypervisor_count_out_of_range():
    p = subprocess.run([VIRTDECK, "lab", "up", "--hypervisors", "0"], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "between 1 and 4" in p.stderr and "Traceback" not in p.stderr
