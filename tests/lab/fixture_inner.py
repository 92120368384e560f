"""Run by tests/lab/test_sandbox_cleanup.py inside a sandbox (not collected: no test_ prefix):
one test that takes the session's `lab` fixture (which brings a lab up in the sandbox), writes
its PID to $VD_READY and waits to be ended by a signal. The fixture must then take its lab
down in the session's teardown, as it does after Ctrl-C."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab


def test_wait_for_a_signal(lab):
    assert lab.brought_up  # a fresh sandbox: this session owns the lab
    Path(os.environ["VD_READY"]).write_text(str(os.getpid()))
    time.sleep(600)
