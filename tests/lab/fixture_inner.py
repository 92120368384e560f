"""Run by tests/lab/ inside a sandbox (not collected: no test_ prefix): one test that takes
the session's `lab` fixture, which must own the lab (bring it up, or adopt one whose session
was killed). With $VD_READY set it writes its PID there and waits to be ended by a signal (the
fixture must then take its lab down in the session's teardown, as after Ctrl-C); without, it
ends at once and the session's teardown takes the lab down."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab


def test_wait_for_a_signal(lab):
    assert lab.brought_up  # this session owns the lab
    if os.environ.get("VD_READY"):
        Path(os.environ["VD_READY"]).write_text(str(os.getpid()))
        time.sleep(600)
