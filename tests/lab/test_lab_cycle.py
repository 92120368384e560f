"""Lab down/up cycles (N = 3, N = 2), repair and refusals — run in a sandbox.

The cycle tests (tests/lab/cycle_inner.py) take a lab down. To never disturb the lab this
session and other people use, they run in a child pytest inside fresh network and mount
namespaces (backends/lab/sandbox.py, as `virtdeck lab sandbox -- CMD` does): the same code
builds and destroys complete labs there. Whatever the child leaves (it should leave nothing) is
stopped by the PIDs its state recorded.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab
HERE = Path(__file__).resolve().parent


def test_down_up_cycles_in_a_sandbox():
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    from virtdeck.backends.lab.sandbox import run_sandboxed
    env = dict(os.environ, VIRTDECK_LAB_KEEP="", PYTHONDONTWRITEBYTECODE="1")
    p = run_sandboxed([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                       str(HERE / "cycle_inner.py")], capture=True, timeout=1200,
                      cwd=HERE.parent.parent, env=env)
    print(p.stdout[-5000:], p.stderr[-2000:])
    assert p.returncode == 0, p.stdout[-5000:] + p.stderr[-2000:]
    assert " passed" in p.stdout and "skipped" not in p.stdout.splitlines()[-1]
    assert p.stray == [], f"the sandboxed lab left processes behind: {p.stray}"
