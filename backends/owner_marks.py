"""Owner marks: how a hypervisor says "these volumes are virtdeck's, made for VM X" — written
BEFORE the volumes exist, so a create killed at any point leaves volumes reconcile can claim.

libvirt volumes carry no metadata of their own, so the mark is a small JSON file on the host,
``/var/lib/virtdeck/marks/VM.json`` ::

    {"vm": "web1", "tenant": "demo", "pool": "virtdeck",
     "volumes": ["web1.qcow2", "web1-seed.iso"], "created": 1796121600.5, "creator": "4711@jump"}

``created`` is the create's start (Unix seconds); ``creator`` the PID and machine that made it
(for a human reading it). Together with the naming convention (``VM.qcow2``, ``VM-seed.iso``,
NVRAM ``VM_VARS.fd``) it tells virtdeck's volumes from an operator's: reconcile only ever judges
volumes a mark names.

In flight: while a create runs it holds ``flock`` on its mark over its SSH link (the way
:mod:`backends.hostlock` holds the placement lock): a process killed outright, or whose link
dropped, loses the lock with its channel. So "is this create still running?" is asked of the
host itself with ``flock -n`` — no PID or clock comparison across machines.

A mark outlives a successful create (the domain then owns the volumes) and follows a moved VM
(``vm move`` writes one on the target); ``vm delete`` removes it with the volumes. A mark whose
volumes and domain are gone (a delete that failed half-way, a move's source) is stale, harmless,
and dropped by ``virtdeck check --fix``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import socket
import time
from dataclasses import dataclass, field

import asyncssh

from . import hostlock, ioloop
from ..console.errors import HostError

MARK_DIR = "/var/lib/virtdeck/marks"
NVRAM_DIR = "/var/lib/libvirt/qemu/nvram"
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class OwnerMark:
    """One mark (see the module doc). ``busy``: a create holds it now (read by
    :func:`read_host`; False for a mark being written)."""

    vm: str
    tenant: str
    pool: str
    volumes: tuple[str, ...]
    created: float = 0.0
    creator: str = ""
    busy: bool = False

    def to_json(self) -> str:
        return json.dumps({"vm": self.vm, "tenant": self.tenant, "pool": self.pool,
                           "volumes": list(self.volumes), "created": self.created,
                           "creator": self.creator}, sort_keys=True)


@dataclass(frozen=True)
class HostMarks:
    """What :func:`read_host` found on one host: its ``marks`` and the ``nvram`` file names in
    :data:`NVRAM_DIR`."""

    host: str
    marks: tuple[OwnerMark, ...] = ()
    nvram: tuple[str, ...] = field(default=())


def path_of(vm: str) -> str:
    """The mark file of VM ``vm``. Raises ValueError for a name that is not a plain file name."""
    if not _SAFE.match(vm):
        raise ValueError(f"VM name {vm!r} cannot name a mark file")
    return f"{MARK_DIR}/{vm}.json"


def new_mark(vm: str, tenant: str, pool: str, volumes) -> OwnerMark:
    """A mark made now by this process."""
    return OwnerMark(vm=vm, tenant=tenant, pool=pool, volumes=tuple(volumes), created=time.time(),
                     creator=f"{os.getpid()}@{socket.gethostname()}")


class HeldMark(hostlock.FlockHolder):
    """A mark written on ``host`` and flock-held by this process (the create is in flight);
    :meth:`release` stops holding it (the create is over) and leaves the file."""

    def __init__(self, session, host: str, mark: OwnerMark, proc):
        super().__init__(proc)
        self.session, self.host, self.mark = session, host, mark

    def drop(self) -> None:
        """Release and remove the mark file (an undo that removed every volume). Raises
        HostError when the host did not answer."""
        written = self._proc is not None
        self.release()
        if not written:
            return  # a session without SSH links: nothing was written
        remove(self.session, self.host, self.mark.vm)


def claim(session, host: str, mark: OwnerMark, wait: float = 30.0) -> HeldMark:
    """Write ``mark`` on ``host`` and hold it (flock over this session's SSH link) until
    :meth:`HeldMark.release`. Blocking. Raises HostError when the host does not answer within
    ``wait`` seconds or refuses the write. A session without SSH links (libvirt test:// driver
    sessions) gets a mark that holds nothing."""
    if not hasattr(session, "link"):
        return HeldMark(session, host, mark, None)
    path = path_of(mark.vm)
    tmp = f"{path}.tmp{os.getpid()}"
    # The lock is taken on the temporary file and the file then renamed into place (a flock
    # follows the inode): the mark never exists unheld, so reconcile cannot drop it as stale
    # between its write and its lock.
    cmd = (f"mkdir -p {MARK_DIR} && printf '%s\\n' {shlex.quote(mark.to_json())} > {tmp} && "
           f"exec flock -w {wait:g} {tmp} sh -c 'mv -f {tmp} {path} && echo locked; exec cat >/dev/null'")
    link = session.link(host)

    async def _start():
        try:
            proc, line, err = await hostlock.open_holder(link, cmd, wait + 5)
        except asyncio.TimeoutError:
            raise HostError(f"{host}: owner mark {path} not held within {wait:g} s") from None
        if line != "locked":
            proc.close()
            if "ermission denied" in err:  # a non-root operator and a root-only directory
                raise HostError(f"{host}: cannot write the owner mark {path}: the operator may not write "
                                f"{MARK_DIR}; fix on {host}: sudo install -d -m 2775 -g libvirt {MARK_DIR}")
            raise HostError(f"{host}: cannot write the owner mark {path}: {err or 'no answer'}")
        return proc

    try:
        proc = ioloop.call(_start(), timeout=wait + 15)
    except HostError:
        raise
    except (asyncssh.Error, OSError) as exc:
        raise HostError(f"{host}: owner mark {path}: {exc}") from None
    return HeldMark(session, host, mark, proc)


_READ = (f"d={MARK_DIR}; for f in $d/*.json; do [ -e \"$f\" ] || continue; "
         "if flock -n \"$f\" true; then s=idle; else s=busy; fi; "
         "printf '%s ' \"$s\"; tr -d '\\n' < \"$f\"; echo; done; "
         f"echo '--nvram'; ls -1 {NVRAM_DIR} 2>/dev/null; true")


def read_host(session, host: str, timeout: float = 20.0) -> HostMarks:
    """Every mark on ``host`` with its in-flight state (``busy``: a create holds it), and the
    NVRAM file names. One SSH command. Raises HostError when the host does not answer."""
    res = session.run(host, ["sh", "-c", _READ], timeout=timeout)
    if res.rc != 0:
        raise HostError(f"{host}: reading owner marks failed: {res.stderr.strip() or f'exit {res.rc}'}")
    marks: list[OwnerMark] = []
    nvram: list[str] = []
    in_nvram = False
    for line in res.stdout.splitlines():
        if line == "--nvram":
            in_nvram = True
            continue
        if in_nvram:
            if line.strip():
                nvram.append(line.strip())
            continue
        state, _, text = line.partition(" ")
        try:
            d = json.loads(text)
            marks.append(OwnerMark(vm=str(d["vm"]), tenant=str(d.get("tenant", "")),
                                   pool=str(d.get("pool", "")), volumes=tuple(d.get("volumes", ())),
                                   created=float(d.get("created", 0)), creator=str(d.get("creator", "")),
                                   busy=state == "busy"))
        except (ValueError, KeyError, TypeError):
            continue  # a torn or foreign file: not ours to judge
    return HostMarks(host, tuple(marks), tuple(nvram))


def remove(session, host: str, vm: str, timeout: float = 20.0) -> None:
    """Remove VM ``vm``'s mark on ``host`` unless a create holds it. Raises HostError.

    The lock is taken on the file as opened, and the file is removed only while ``path`` still
    names that same file (inode): a new create of the same VM may rename its fresh, held mark
    into place between our open and our ``rm`` (:func:`claim`), and that one must stay."""
    path = path_of(vm)
    script = (f"[ -e {path} ] || exit 0; exec 9<{path} || exit 0; flock -n 9 || exit 1; "
              f"[ \"$(stat -c %i {path} 2>/dev/null)\" = \"$(stat -L -c %i /proc/$$/fd/9)\" ] || exit 1; "
              f"rm -f {path}")
    res = session.run(host, ["sh", "-c", script], timeout=timeout)
    if res.rc != 0:
        raise HostError(f"{host}: owner mark {path} not removed (a create holds it, or: "
                        f"{res.stderr.strip() or f'exit {res.rc}'})")


def remove_nvram(session, host: str, filename: str, timeout: float = 20.0) -> None:
    """Delete NVRAM file ``filename`` (a name in :data:`NVRAM_DIR`). Raises HostError."""
    if not _SAFE.match(filename):
        raise HostError(f"{host}: {filename!r} is not an NVRAM file name")
    res = session.run(host, ["rm", "-f", "--", f"{NVRAM_DIR}/{filename}"], timeout=timeout)
    if res.rc != 0:
        raise HostError(f"{host}: removing {NVRAM_DIR}/{filename} failed: {res.stderr.strip()}")
