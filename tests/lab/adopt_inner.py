"""Run inside a sandbox by tests/lab/test_sandbox_cleanup.py (not collected): a pytest session
whose `lab` fixture brought a lab up is killed outright (SIGKILL: no teardown), then a second
session adopts the orphaned lab and takes it down at its end. Prints ADOPTED when all held."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def session(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(HERE / "fixture_inner.py")], cwd=HERE.parent.parent,
                            env=dict(os.environ, VIRTDECK_LAB_KEEP="", **env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def main() -> None:
    from virtdeck.backends.lab.owners import is_orphan
    from virtdeck.backends.lab.state import load_state, pid_alive
    ready = Path(tempfile.mkdtemp()) / "ready"
    first = session({"VD_READY": str(ready)})
    while not ready.exists():
        assert first.poll() is None, first.stdout.read()
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    state = load_state()
    holders = state["holders"]
    assert all(pid_alive(p) for p in holders.values()), "the killed session's lab should be up"
    assert is_orphan(state["owner"]) and state["owner"]["pid"] == first.pid, state["owner"]
    second = session({})
    out = second.communicate(timeout=300)[0]
    assert second.returncode == 0, out  # its test asserts lab.brought_up: it adopted the lab
    assert not any(pid_alive(p) for p in holders.values()), "the adopted lab is still up"
    assert not load_state().get("holders"), load_state()
    print("ADOPTED")


if __name__ == "__main__":
    main()
