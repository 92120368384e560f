"""Where the lab keeps its files, and small helpers to run commands and track PIDs.

Paths (root's, from platformdirs):

- lab state dir ``user_data_dir("virtdeck")/lab`` (``/root/.local/share/virtdeck/lab``):
  ``id_ed25519`` (+ ``.pub``), ``known_hosts``, ``inventory.toml``, ``state.json`` (what ``up``
  built: hypervisor count, holder PIDs, the hosts' cgroups and network namespace inodes, and
  the lab's owner, see owners.py), and ``hosts/<name>/`` per host (bind-mounted over the
  host's /etc/openvswitch, /var/lib/libvirt, … inside its mount namespace; logs in ``log/``).
- sandboxes ``user_data_dir("virtdeck")/sandbox-*/`` (``owner.json`` + their own ``lab/``).
- image cache ``user_cache_dir("virtdeck")/images`` (template builds, see image.py).

``VIRTDECK_LAB_DIR`` / ``VIRTDECK_IMAGE_CACHE`` override them (tests of the image recipe).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import platformdirs

from ...console.errors import ExitCode, VirtdeckError


class LabError(VirtdeckError):
    """A lab step failed or the machine cannot host the lab; the message says what to do."""

    exit_code = ExitCode.FAILED


def lab_dir() -> Path:
    """The lab state directory (not created)."""
    env = os.environ.get("VIRTDECK_LAB_DIR")
    return Path(env) if env else Path(platformdirs.user_data_dir("virtdeck")) / "lab"


def image_cache_dir() -> Path:
    """The template image cache directory (not created)."""
    env = os.environ.get("VIRTDECK_IMAGE_CACHE")
    return Path(env) if env else Path(platformdirs.user_cache_dir("virtdeck")) / "images"


def host_dir(name: str) -> Path:
    """Per-host directory holding the directories bind-mounted inside that host."""
    return lab_dir() / "hosts" / name


def state_file() -> Path:
    return lab_dir() / "state.json"


def load_state() -> dict:
    """The record written by ``up``: ``{"hypervisors": int, "holders": {host: pid}, "cgroups":
    {host: [dir, …]}, "netns": {host: inode}, "owner": owner record}``; {} if none."""
    try:
        return json.loads(state_file().read_text())
    except (OSError, ValueError):
        return {}


def save_state(state: dict) -> None:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def pid_alive(pid: int | None) -> bool:
    """True when ``pid`` names a live (non-zombie) process."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0] != "Z"
    except (OSError, IndexError):
        return False


def read_pidfile(path: Path) -> int | None:
    """The PID in ``path`` if that process is alive, else None."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def kill_pids(pids: list[int], timeout: float = 5.0) -> None:
    """SIGTERM each PID, wait up to ``timeout`` s for all to go, then SIGKILL the rest.

    Only ever called with PIDs the lab started (holders, daemons in lab namespaces).
    """
    pids = [p for p in pids if pid_alive(p)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if pid_alive(p)]
        if pids:
            time.sleep(0.02)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if pid_alive(p)]
        if pids:
            time.sleep(0.02)


def run(argv: list[str], *, check: bool = True, input: str | None = None,
        timeout: float = 60, what: str | None = None) -> subprocess.CompletedProcess:
    """Run ``argv`` capturing text output; on failure raise LabError naming ``what`` and stderr."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, input=input, timeout=timeout)
    except FileNotFoundError:
        raise LabError(f"{argv[0]} is not installed; run `bash .ci/setup` as root") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{what or ' '.join(argv)} did not finish within {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip().splitlines()
        detail = err[-1] if err else f"exit {proc.returncode}"
        raise LabError(f"{what or ' '.join(argv[:4])} failed: {detail}")
    return proc


class lab_lock:
    """Exclusive flock serializing `up`/`down` across processes (two test sessions starting the
    lab at once). The lock file sits beside the lab dir, which `down` empties."""

    def __init__(self, log=None):
        self.log = log
        self.fd = None

    def __enter__(self):
        import fcntl
        path = lab_dir().parent / "lab.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if self.log:
                self.log("lab: waiting for another `lab up`/`lab down` to finish …")
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # closing releases the flock
        self.fd = None


def write_file(path: Path, text: str, *, in_place: bool = False) -> bool:
    """Write ``text`` to ``path`` only when it differs; returns True when written.

    Readers run concurrently (sshd reads authorized_keys per login, ssh reads known_hosts), so
    the new content is renamed into place atomically — except ``in_place`` files, which are
    bind-mounted into a host (/etc/hosts): a rename would leave the mount on the old inode.
    """
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    if in_place:
        with open(path, "r+" if path.exists() else "w") as f:
            f.write(text)
            f.truncate()
        return True
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return True
