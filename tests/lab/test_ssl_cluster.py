"""The cluster-ssl OVN lab flavour (`virtdeck lab up --ovn cluster-ssl`), run in a sandbox so the
lab others use never changes: 3 NB + 3 SB raft members with ovn-northd on each, a PKI made with
ovs-pki, ovn-controller on ssl:. tests/lab/ssl_cluster_inner.py holds the tests (status names
the leaders; SSL connect with the lab PKI; wrong CA / stranger certificate / missing key in one
sentence naming the file; the NB leader killed by its PID file under the console and a CLI
`network create` loop; `lab up` repairs the member). No guest boots: ~1 minute on this machine.
The figures (lab up, kill -> console detect -> console live again) are printed with ``-s``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab
HERE = Path(__file__).resolve().parent


def test_cluster_ssl_lab_in_a_sandbox():
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    from virtdeck.backends.lab.sandbox import run_sandboxed
    env = dict(os.environ, VIRTDECK_LAB_KEEP="", PYTHONDONTWRITEBYTECODE="1")
    p = run_sandboxed([sys.executable, "-m", "pytest", "-q", "-s", "-rs", "-p", "no:cacheprovider",
                       str(HERE / "ssl_cluster_inner.py")], capture=True, timeout=900,
                      cwd=HERE.parent.parent, env=env)
    print(p.stdout[-6000:], p.stderr[-2000:])
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-2000:]
    assert " passed" in p.stdout and "skipped" not in p.stdout.splitlines()[-1]
    assert p.stray == [], f"the sandboxed lab left processes behind: {p.stray}"
