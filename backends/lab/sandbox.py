"""A private lab world: run a command in fresh network + mount namespaces where `virtdeck lab`
builds (and tears down) labs that never touch the machine's own lab — and that end with it,
whatever ends it.

:func:`run_sandboxed` ``(argv, timeout=None, capture=False, …) -> CompletedProcess`` runs
``argv`` as ``unshare --net --mount --propagation private -- sh -c 'ip link set lo up; mount -t
tmpfs … /run/netns; exec argv'`` with ``VIRTDECK_LAB_DIR`` pointing at a fresh directory
``sandbox-XXXX/lab`` under root's data dir (not /tmp: sshd's StrictModes refuses keys below a
world-writable directory). Inside, the lab has the same names and addresses (192.168.100.0/24 …)
as the real one — they live in the sandbox's own network namespace, and the same identities:
the lab key and the hosts' SSH host keys are copied in, so known_hosts files made for the
machine's lab fit. The template cache is shared and is built *before* entering (the sandbox has
no route to the Debian mirror).

Lifetime (issue 17):

- ``sandbox-XXXX/owner.json`` records the owner (this process: PID, start time, boot id), the
  freezer cgroup ``virtdeck-sandbox-XXXX`` every process of the sandbox runs in (the command
  joins it before exec; daemons cannot leave it) and the sandbox's namespace inodes
  (owners.py). The command gets ``PR_SET_PDEATHSIG`` SIGKILL: it dies with its owner.
- This process holds the sandbox's network and mount namespaces open (file descriptors) until
  it is done, so the lab's own ``down`` can run inside them after the command has ended.
- When the command ends (any way), or SIGTERM / SIGINT / SIGHUP reach this process, or the
  timeout expires: the signal is passed on to the command (a grace of ``grace`` s to end by
  itself), the lab's ``down`` runs in the sandbox's namespaces if a lab is up there, then
  every process left in its cgroup and namespaces is killed by PID (frozen first, so nothing
  forks meanwhile), its cgroups are removed and its directory deleted.
- SIGKILL cannot be caught: the directory stays with ``owner.json``, and the next ``lab up``,
  ``lab status`` or ``lab sandbox`` anywhere on the machine reaps it (owners.reap_orphans).

CLI: ``virtdeck lab sandbox -- CMD …`` (e.g. ``-- virtdeck lab up -n 3``, or a pytest run that
takes labs down and up).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .owners import (LabInterrupted, base_dir, clear_sandbox, freezer_dir, interrupt_on_signals,
                     lab_pids, owner_record, reap_orphans)
from .state import LabError, pid_alive
from .state import lab_dir as state_lab_dir

SCRIPT = ('set -e; ip link set lo up; mount -t tmpfs -o mode=0755 vd-sandbox /run/netns; '
          'exec "$@"')
PR_SET_PDEATHSIG = 1
DOWN_TIMEOUT_S = 60  # the lab's own down inside the sandbox; the kill sweep follows anyway
# The lab's down, run inside the sandbox's namespaces (nsenter) by the cleanup.
DOWN_PY = "from virtdeck.backends.lab.down import down; down(log=lambda m: None)"


def _write_owner(root: Path, owner: dict) -> None:
    tmp = root / ".owner.json.tmp"
    tmp.write_text(json.dumps(owner, indent=2, sort_keys=True) + "\n")
    tmp.replace(root / "owner.json")


def _child_setup(procs_file: str | None):
    """Runs in the child between fork and exec: join the sandbox's freezer cgroup (so every
    descendant, daemons included, is found and frozen by it) and die with the owner."""
    def setup():
        if procs_file:
            with open(procs_file, "w") as f:
                f.write(str(os.getpid()))
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    return setup


def _hold_namespaces(proc: subprocess.Popen, timeout: float = 10.0) -> dict[str, int]:
    """Open the child's network and mount namespaces once it has left ours (``unshare`` ran);
    the open descriptors keep them alive after the command ends. {} if it ended first."""
    mine = os.stat("/proc/self/ns/net").st_ino
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if os.stat(f"/proc/{proc.pid}/ns/net").st_ino != mine:
                fds = {}
                for ns in ("net", "mnt"):
                    fds[ns] = os.open(f"/proc/{proc.pid}/ns/{ns}", os.O_RDONLY)
                return fds
        except OSError:
            return {}
        time.sleep(0.001)
    return {}


def _lab_is_up(lab: Path) -> bool:
    try:
        holders = json.loads((lab / "state.json").read_text()).get("holders", {})
    except (OSError, ValueError):
        return False
    return any(pid_alive(p) for p in holders.values())


def _down_inside(lab: Path, fds: dict[str, int]) -> None:
    """The lab's own `down` (guests destroyed through libvirt, namespaces deleted) run in the
    sandbox's network and mount namespaces; errors are left to the kill sweep that follows."""
    if not fds or not _lab_is_up(lab):
        return
    argv = ["nsenter", f"--net=/proc/self/fd/{fds['net']}", f"--mount=/proc/self/fd/{fds['mnt']}",
            "--", sys.executable, "-c", DOWN_PY]
    try:
        subprocess.run(argv, env=dict(os.environ, VIRTDECK_LAB_DIR=str(lab)), pass_fds=list(fds.values()),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=DOWN_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        pass


def _end_command(proc: subprocess.Popen | None, signum: int, grace: float) -> None:
    """Pass ``signum`` on to the command and give it ``grace`` seconds to end by itself (a
    pytest inside tears its own lab down on it); the kill sweep takes what is left."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, signum)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass


def run_sandboxed(argv: list[str], *, timeout: float | None = None, capture: bool = False,
                  cwd: str | os.PathLike | None = None, env: dict | None = None,
                  grace: float = 5.0, log=None):
    """Run ``argv`` in a sandbox and clean everything of it up afterwards (see module doc).

    Returns the CompletedProcess (``returncode`` 128 + N when signal N ended the sandbox) with
    extra attributes ``stray`` (PIDs of the sandbox still running when the command had ended
    — its lab's daemons when it left its lab up; [] when it cleaned up after itself) and
    ``signal`` (the signal number that ended it, or None). ``log(line)`` gets the reaper's
    lines about other sandboxes (default: stderr). Raises LabError when not root or when a
    process of the sandbox survives SIGKILL; subprocess.TimeoutExpired after ``timeout``
    seconds (everything cleaned up first).
    """
    if os.geteuid() != 0:
        raise LabError("the lab sandbox needs root: run it with sudo")
    from .image import ensure_template
    ensure_template(log=lambda m: None)
    reap_orphans(log)
    base = base_dir()
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
    freezer = freezer_dir(f"virtdeck-{root.name}")
    if freezer is not None:
        freezer.mkdir(parents=True, exist_ok=True)
    owner = owner_record(keep=False, freezer=str(freezer) if freezer else None)
    _write_owner(root, owner)
    full_env = dict(os.environ if env is None else env, VIRTDECK_LAB_DIR=str(lab_dir))
    pipe = subprocess.PIPE if capture else None
    proc = None
    fds: dict[str, int] = {}
    signum = None
    timed_out = False
    out = err = None
    with interrupt_on_signals():
        try:
            try:
                proc = subprocess.Popen(
                    ["unshare", "--net", "--mount", "--propagation", "private", "--",
                     "sh", "-c", SCRIPT, "sh", *argv], env=full_env, cwd=cwd, stdout=pipe,
                    stderr=pipe, text=True,
                    preexec_fn=_child_setup(str(freezer / "cgroup.procs") if freezer else None))
                fds = _hold_namespaces(proc)
                if fds:
                    owner.update(netns=os.fstat(fds["net"]).st_ino, mntns=os.fstat(fds["mnt"]).st_ino)
                    _write_owner(root, owner)
                out, err = proc.communicate(timeout=timeout)
            except LabInterrupted as exc:
                signum = exc.signum
            except subprocess.TimeoutExpired:
                timed_out = True
        finally:
            _end_command(proc, signum or signal.SIGTERM, grace)
            # Namespaces held open here cannot be reused meanwhile ("own"); without a freezer
            # cgroup only namespaces can find the lab's processes ("all").
            ns = "own" if freezer is not None else "all"
            stray = sorted(lab_pids(root, owner, _lab_state(lab_dir), ns=ns))
            _down_inside(lab_dir, fds)
            try:
                clear_sandbox(root, owner, ns)
            finally:
                for fd in fds.values():
                    os.close(fd)
    if capture and proc is not None and (signum or timed_out):
        try:
            out, err = proc.communicate(timeout=5)
        except (ValueError, OSError, subprocess.SubprocessError):
            pass
    if timed_out:
        raise subprocess.TimeoutExpired(argv, timeout, out, err)
    code = 128 + signum if signum else (proc.returncode if proc else 1)
    result = subprocess.CompletedProcess(argv, code, out, err)
    result.stray = stray
    result.signal = signum
    return result


def _lab_state(lab: Path) -> dict:
    try:
        return json.loads((lab / "state.json").read_text())
    except (OSError, ValueError):
        return {}
