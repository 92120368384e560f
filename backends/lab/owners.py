"""Who owns each lab and sandbox on this machine, what they run, and reaping the orphans.

Every lab and sandbox records its *owner*: the process whose life bounds the lab's.

- A sandbox (``user_data_dir("virtdeck")/sandbox-*/``, see sandbox.py) writes ``owner.json``:
  ``{"pid", "start_ticks", "started", "argv", "keep": false, "freezer", "netns", "mntns"}`` —
  the `lab sandbox` process, its start time (field 22 of /proc/PID/stat, clock ticks since
  boot, so a recycled PID is never taken for the owner), the wall-clock start (epoch seconds),
  the freezer cgroup holding every process of the sandbox, and the inodes of its network and
  mount namespaces.
- A lab's ``state.json`` gets ``"owner"`` from ``up`` (same fields, no cgroup): a test
  session's PID with ``keep: false`` (the session takes it down), or the `virtdeck lab up`
  process with ``keep: true`` (an operator's lab, kept until `virtdeck lab down`).

An *orphan* is a lab or sandbox whose owner record says ``keep: false`` and whose owner process
is gone (killed by SIGKILL, a runner's time limit, a crash: nothing could clean up). A record
without an owner (made before owners were recorded) is never an orphan: unknown is not gone.

:func:`labs` ``() -> list[LabInfo]`` lists the machine's labs and sandboxes (``virtdeck lab
status --all``). :func:`reap_orphans` ``(log) -> list[LabInfo]`` reaps orphaned *sandboxes*
(nobody else can reach a sandbox's private network, so reaping hurts no one) and reports an
orphaned machine lab with the command that takes it down (others may be using it); it also
removes empty lab cgroups that no lab or sandbox accounts for (:func:`stray_cgroups`).

Why one module of ~540 lines: it is one concern, who owns a lab and cleaning up after a gone
owner, and reaping an orphan needs all of its parts together — the owner records, finding a
lab's processes (by namespace inode and cgroup), the listing `lab status --all` prints, and the
kill/clear/cgroup sweep. sandbox.py and up.py use the same parts for a live owner's own lab.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from .hosts import remove_tree_cgroup
from .state import LabError, pid_alive

FREEZER_ROOT = Path("/sys/fs/cgroup/freezer")
CPU_SAMPLE_S = 0.5  # how long `status --all` watches CPU time to give a percentage


# --------------------------------------------------------------------------- owner records

def base_dir() -> Path:
    """``user_data_dir("virtdeck")``: holds the machine's ``lab/`` and every ``sandbox-*/``."""
    return Path(platformdirs.user_data_dir("virtdeck"))


def start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (/proc/PID/stat field 22); None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def boot_id() -> str:
    """This boot's id (/proc/sys/kernel/random/boot_id): PIDs, namespace inodes and cgroups of
    a record made in another boot are all gone, whatever numbers they had."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def owner_record(pid: int | None = None, *, keep: bool = False, **extra) -> dict:
    """An owner record for ``pid`` (default: this process); see the module doc for fields."""
    pid = pid or os.getpid()
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        argv = ""
    return {"pid": pid, "start_ticks": start_ticks(pid), "started": round(time.time(), 1),
            "argv": argv[:200], "keep": keep, "boot_id": boot_id(), **extra}


def owner_alive(rec: dict | None) -> bool | None:
    """True when the owner process of ``rec`` still runs (same PID and start time), False when
    it is gone, None when there is no record."""
    if not rec or not rec.get("pid"):
        return None
    pid = int(rec["pid"])
    if rec.get("boot_id") and rec["boot_id"] != boot_id():
        return False
    return pid_alive(pid) and (rec.get("start_ticks") is None or start_ticks(pid) == rec["start_ticks"])


def is_orphan(rec: dict | None) -> bool:
    """An owner record whose owner is gone and who meant to take the lab down with it."""
    return bool(rec) and not rec.get("keep") and owner_alive(rec) is False


class LabInterrupted(KeyboardInterrupt):
    """SIGTERM, SIGINT or SIGHUP reached a lab owner; ``signum`` says which. A KeyboardInterrupt,
    so pytest and `finally:` blocks tear down as they do for Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(f"signal {signal.Signals(signum).name}")
        self.signum = signum


OWNER_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@contextmanager
def interrupt_on_signals(signals: tuple[int, ...] = OWNER_SIGNALS):
    """Within the block, the first SIGTERM, SIGINT or SIGHUP raises :class:`LabInterrupted` in
    the main thread (so the owner's cleanup runs); later ones are ignored, so a second signal
    cannot cut that cleanup short (SIGKILL still can: then the reaper takes over). The previous
    handlers are restored afterwards. Outside the main thread it does nothing (Python only
    delivers signals there)."""
    import threading
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[int] = []

    def handler(signum, _frame):
        seen.append(signum)
        if len(seen) == 1:
            raise LabInterrupted(signum)
    old = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# --------------------------------------------------------------------------- processes

def _proc_ns() -> dict[int, tuple[int, int]]:
    """Every process: PID -> (network namespace inode, mount namespace inode)."""
    out = {}
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                out[int(e)] = (os.stat(f"/proc/{e}/ns/net").st_ino, os.stat(f"/proc/{e}/ns/mnt").st_ino)
            except OSError:
                pass
    return out


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def freezer_dir(name: str) -> Path | None:
    """The cgroup-v1 freezer directory for ``name`` below this process's own freezer cgroup;
    None when the machine has no v1 freezer hierarchy (then only namespaces find processes)."""
    if not (FREEZER_ROOT / "cgroup.procs").exists():
        return None
    mine = "/"
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, ctrls, path = line.split(":", 2)
            if "freezer" in ctrls.split(","):
                mine = path
    except OSError:
        pass
    return FREEZER_ROOT / mine.lstrip("/") / name


def _cgroup_pids(d: str | Path | None) -> set[int]:
    if not d:
        return set()
    try:
        return {int(x) for x in Path(d, "cgroup.procs").read_text().split()}
    except (OSError, ValueError):
        return set()


def _state(lab: Path) -> dict:
    try:
        return json.loads((lab / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def lab_pids(root: Path, owner: dict | None, state: dict, table: dict | None = None,
             ns: str = "all") -> set[int]:
    """PIDs of everything a lab or sandbox runs (owner and caller excluded): the sandbox's
    freezer cgroup, plus processes found by namespace, as ``ns`` says:

    - "none": the cgroup only;
    - "own": also the sandbox's own network and mount namespaces (owner.json) — only for the
      sandbox itself, which holds them open, so their inode numbers cannot be reused;
    - "all": also the lab hosts' network namespaces recorded by ``up`` and the live holders'.

    The kernel hands a freed namespace's inode number to the next namespace made anywhere on
    the machine, so killing by a recorded inode could hit someone else's processes: with a
    cgroup to go by, killers use "own" (the sandbox) or "none" (the reaper); "all" is for
    listing, or for a machine without the freezer hierarchy."""
    table = _proc_ns() if table is None else table
    owner = owner or {}
    pids = _cgroup_pids(owner.get("freezer"))
    net: set[int] = set()
    mnt: set[int] = set()
    if ns in ("own", "all"):
        net |= {owner["netns"]} if owner.get("netns") else set()
        mnt |= {owner["mntns"]} if owner.get("mntns") else set()
    if ns == "all":
        net |= {v for v in state.get("netns", {}).values() if v}
        for h in state.get("holders", {}).values():
            if pid_alive(h) and h in table:
                net.add(table[h][0])
    me = table.get(os.getpid(), (None, None))
    net.discard(me[0])  # never the caller's own namespaces (a lab recorded from inside one)
    mnt.discard(me[1])
    if net or mnt:
        pids |= {p for p, (n, m) in table.items() if n in net or m in mnt}
    pids.discard(owner.get("pid"))
    pids.discard(os.getpid())
    return {p for p in pids if pid_alive(p)}


# --------------------------------------------------------------------------- listing

@dataclass
class LabInfo:
    """One lab or sandbox on the machine. ``kind``: "lab" (the machine's) or "sandbox";
    ``path``: its directory; ``owner``: the owner record (None: not recorded); ``age_s``:
    seconds since the owner started it (None: unknown); ``hosts``: (name, running) pairs;
    ``guests``: running qemu processes; ``pids``: every process of it; ``cpu_pct``: CPU they
    use now (percent of one core, sampled over CPU_SAMPLE_S); ``cpu_s``: CPU seconds they
    used so far (processes alive now only)."""

    kind: str
    path: Path
    owner: dict | None
    state: dict
    age_s: float | None = None
    hosts: tuple[tuple[str, bool], ...] = ()
    guests: int = 0
    pids: frozenset[int] = frozenset()
    cpu_pct: float = 0.0
    cpu_s: float = 0.0

    @property
    def owner_alive(self) -> bool | None:
        return owner_alive(self.owner)

    @property
    def orphan(self) -> bool:
        return is_orphan(self.owner)

    @property
    def reap_command(self) -> str:
        if self.kind == "sandbox":
            return "virtdeck lab status  (reaps orphaned sandboxes)"
        return "virtdeck lab down"

    def line(self) -> str:
        o = self.owner
        if o is None:
            who = "owner not recorded"
        else:
            state = "alive" if self.owner_alive else "GONE"
            if o.get("keep"):
                who = f"kept until `lab down` (brought up by pid {o['pid']}: {_short(o.get('argv', ''))})"
            else:
                who = f"owner pid {o['pid']} ({state}) {_short(o.get('argv', ''))}"
        age = "?" if self.age_s is None else _age(self.age_s)
        up = [n for n, ok in self.hosts if ok]
        hosts = f"{len(up)}/{len(self.hosts)} hosts" + (f" ({', '.join(up)})" if up else "")
        return (f"{self.kind:7} {self.path.name:20} age {age:>6}  {hosts}, {self.guests} guest(s), "
                f"{len(self.pids)} processes, CPU {self.cpu_pct:.0f}% now / {self.cpu_s:.0f} s  {who}")


def _short(argv: str, width: int = 50) -> str:
    """A command line for one table cell: no interpreter, programs by base name."""
    words = argv.split()
    if words and os.path.basename(words[0]).startswith("python"):
        words = words[2:] if words[1:2] == ["-m"] else words[1:]
    if words:
        words[0] = os.path.basename(words[0])
    text = " ".join(words)
    return text if len(text) <= width else text[:width - 1] + "…"


def _age(s: float) -> str:
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.0f}m" if s < 7200 else f"{s / 3600:.1f}h"


def _read_owner(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _candidates() -> list[tuple[str, Path, Path, dict | None]]:
    """(kind, directory, lab dir, owner record) for the machine lab and every sandbox dir."""
    base = base_dir()
    out = []
    if (base / "lab").is_dir():
        out.append(("lab", base / "lab", base / "lab", _state(base / "lab").get("owner")))
    for d in sorted(base.glob("sandbox-*")):
        if d.is_dir():
            out.append(("sandbox", d, d / "lab", _read_owner(d / "owner.json")))
    return out


def labs(sample_s: float = CPU_SAMPLE_S) -> list[LabInfo]:
    """Every lab and sandbox on this machine with its owner, age, hosts, running guests and
    the CPU its processes use (sampled over ``sample_s`` seconds). Reads /proc, the cgroup
    files and the state files only: it changes nothing. The machine's lab is listed only
    when its directory holds a state (a lab was brought up)."""
    table = _proc_ns()
    found = []
    now = time.time()
    for kind, root, lab, owner in _candidates():
        state = _state(lab)
        if kind == "lab" and not state.get("holders"):
            continue
        pids = lab_pids(root, owner, state, table, ns="none" if (owner or {}).get("freezer") else "all")
        hosts = tuple((n, pid_alive(p)) for n, p in sorted(state.get("holders", {}).items()))
        started = (owner or {}).get("started")
        if started is None:
            try:
                started = (lab / "state.json" if kind == "lab" else root).stat().st_mtime
            except OSError:
                started = None
        found.append(LabInfo(kind, root, owner, state, None if started is None else now - started,
                             hosts, sum(_comm(p).startswith("qemu-system") for p in pids),
                             frozenset(pids)))
    ticks = {p: _cpu_ticks(p) for i in found for p in i.pids}
    if sample_s > 0 and ticks:
        t0 = time.monotonic()
        time.sleep(sample_s)
        dt = time.monotonic() - t0
        hz = os.sysconf("SC_CLK_TCK")
        for i in found:
            now_ticks = {p: _cpu_ticks(p) for p in i.pids}
            i.cpu_pct = 100.0 * sum(now_ticks[p] - ticks[p] for p in i.pids if now_ticks[p]) / hz / dt
            i.cpu_s = sum(now_ticks.values()) / hz
    return found


# --------------------------------------------------------------------------- killing

def kill_all(pids_fn, freezer: str | Path | None = None, timeout: float = 10.0) -> list[int]:
    """SIGKILL every process ``pids_fn()`` returns until none is left (new ones are found on
    every pass: a dying shell can still fork). With a freezer cgroup, its processes are frozen
    first, so none can fork between listing and killing, then thawed to die. Returns every PID
    signalled. Raises LabError when processes survive ``timeout`` seconds (D state)."""
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    fz = Path(freezer) / "freezer.state" if freezer and Path(freezer).is_dir() else None
    if fz and os.getpid() in _cgroup_pids(freezer):
        fz = None  # never freeze the cgroup this process is in: nothing would thaw it
    while True:
        if fz:
            try:
                fz.write_text("FROZEN")
            except OSError:
                fz = None
        pids = [p for p in pids_fn() if pid_alive(p)]
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if fz:
            try:
                fz.write_text("THAWED")
            except OSError:
                pass
        killed += [p for p in pids if p not in killed]
        if not pids:
            return killed
        end = time.monotonic() + 2
        while any(pid_alive(p) for p in pids) and time.monotonic() < end:
            time.sleep(0.01)
        if time.monotonic() > deadline:
            left = [p for p in pids_fn() if pid_alive(p)]
            if left:
                raise LabError(f"processes {left[:8]} survive SIGKILL (uninterruptible?); "
                               f"reap again later with `virtdeck lab status`")
            return killed


def clear_sandbox(root: Path, owner: dict | None, ns: str) -> list[int]:
    """Stop every process of the sandbox at ``root`` (by PID: its freezer cgroup and the
    namespaces ``ns`` names, see :func:`lab_pids`), remove its lab's cgroups and its freezer
    cgroup, delete the directory. Returns the PIDs that had to be stopped. Raises LabError
    when processes cannot be stopped (then the directory stays, so a later reap finds it)."""
    from .hosts import remove_cgroups
    state = _state(root / "lab")
    owner = owner or {}
    killed = kill_all(lambda: lab_pids(root, owner, _state(root / "lab"), ns=ns),
                      owner.get("freezer"))
    # A killed process is a zombie (what kill_all waits for) before its last threads have
    # left the cgroups (a qemu's take a moment): rmdir fails with EBUSY until they have.
    tasks = Path(owner["freezer"], "tasks") if owner.get("freezer") else None
    deadline = time.monotonic() + 5
    while tasks and time.monotonic() < deadline:
        try:
            if not tasks.read_text().strip():
                break
        except OSError:
            break
        time.sleep(0.01)
    for dirs in state.get("cgroups", {}).values():
        remove_cgroups(dirs)
    # The lab's own down deletes state.json (and with it the record of its cgroups) and may
    # have failed to rmdir them while its processes were still exiting: the instance groups
    # are named after the lab dir, so they are found without the record.
    for d in lab_cgroup_roots(root / "lab"):
        remove_tree_cgroup(d)
    remove_tree_cgroup(owner.get("freezer"))
    shutil.rmtree(root, ignore_errors=True)
    return killed


def lab_cgroup_roots(lab: Path) -> list[Path]:
    """The cgroup instance directories (``…/cpu/virtdeck-lab-<hash>``, one per controller) a
    lab in directory ``lab`` gives its hypervisors (hosts.cgroup_instance), whether or not
    they exist."""
    from .hosts import CGROUP_CONTROLLERS, CGROUP_ROOT, _self_cgroup, cgroup_instance
    name = cgroup_instance(lab)
    out = []
    for ctrl in CGROUP_CONTROLLERS:
        mine = _self_cgroup(ctrl)
        if mine is not None:
            out.append(CGROUP_ROOT / ctrl / mine.lstrip("/") / name)
    return out


STRAY_MIN_AGE_S = 60  # a lab creates a host's cgroup a moment before its holder joins it


def stray_cgroups() -> list[Path]:
    """Lab and sandbox cgroups no lab or sandbox directory accounts for (left by a sandbox
    removed before cgroups were recorded, or by hand): ``virtdeck-lab-<hash>`` in the cpu and
    cpuacct hierarchies whose hash names no sandbox's lab dir, ``virtdeck-sandbox-*`` freezer
    groups whose sandbox dir is gone. Only read: see :func:`reap_orphans`."""
    from .hosts import CGROUP_CONTROLLERS, CGROUP_ROOT, _self_cgroup, cgroup_instance
    base = base_dir()
    known = {"virtdeck-lab"} | {cgroup_instance(d / "lab") for d in base.glob("sandbox-*")}
    out = []
    for ctrl in CGROUP_CONTROLLERS:
        mine = _self_cgroup(ctrl)
        if mine is not None:
            out += [d for d in (CGROUP_ROOT / ctrl / mine.lstrip("/")).glob("virtdeck-lab-*")
                    if d.is_dir() and d.name not in known]
    fz = freezer_dir("x")
    if fz is not None:
        out += [d for d in fz.parent.glob("virtdeck-sandbox-*")
                if d.is_dir() and not (base / d.name.removeprefix("virtdeck-")).is_dir()]
    return sorted(out)


def _reap_stray_cgroups(log) -> None:
    """rmdir stray cgroups that are empty and older than STRAY_MIN_AGE_S (a non-empty cgroup
    cannot be removed, so a live lab's never goes); report the others."""
    for d in stray_cgroups():
        try:
            young = time.time() - d.stat().st_mtime < STRAY_MIN_AGE_S
        except OSError:
            continue
        if young:
            continue
        remove_tree_cgroup(d)
        if d.is_dir():
            log(f"lab: cgroup {d} belongs to no lab or sandbox but still has processes "
                f"(see its cgroup.procs); left alone")
        else:
            log(f"lab: removed stray cgroup {d}")


def _inside(owner: dict) -> bool:
    """This process runs in the sandbox of ``owner`` (its freezer cgroup or its namespaces)."""
    me = os.getpid()
    if me in _cgroup_pids(owner.get("freezer")):
        return True
    try:
        return (os.stat("/proc/self/ns/net").st_ino == owner.get("netns")
                or os.stat("/proc/self/ns/mnt").st_ino == owner.get("mntns"))
    except OSError:
        return False


def reap_orphans(log=None, skip: Path | None = None) -> list[LabInfo]:
    """Reap every orphaned sandbox (owner gone: stop its processes, remove its cgroups and
    directory) and report an orphaned machine lab with the command that takes it down (it is
    reachable by everyone, so it is never taken down behind their backs). Labs and sandboxes
    whose owner is alive, or not recorded, are never touched. ``log(line)`` gets one line per
    finding (default: stderr); ``skip``: a lab directory not to report (the one `up` adopts).
    Returns the orphans found."""
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    found = []
    for kind, root, lab, owner in _candidates():
        if not is_orphan(owner) or (skip is not None and lab == skip):
            continue
        info = LabInfo(kind, root, owner, _state(lab))
        found.append(info)
        if kind == "sandbox" and _inside(owner):
            # Its command's children outlive a killed owner for a moment and may run `lab up`
            # themselves: freezing our own cgroup would freeze this very process for good.
            log(f"lab: sandbox {root.name} (owner pid {owner['pid']} gone) is this process's "
                f"own; it is reaped from outside by the next `virtdeck lab status`")
            continue
        if kind == "sandbox":
            # A freezer cgroup holds every process of a sandbox; recorded namespace inodes
            # are only trusted without one (and never from another boot).
            ns = "all" if not owner.get("freezer") and owner.get("boot_id") == boot_id() else "none"
            try:
                n = len(clear_sandbox(root, owner, ns))
            except LabError as exc:
                log(f"lab: orphaned sandbox {root.name} (owner pid {owner['pid']} gone): {exc}")
                continue
            log(f"lab: reaped sandbox {root.name} (owner pid {owner['pid']} gone): "
                f"stopped {n} processes, removed its cgroups and directory")
        elif info.state.get("holders"):
            log(f"lab: the machine's lab was brought up by pid {owner['pid']} "
                f"({owner.get('argv', '')[:60]}), which is gone; nobody owns it now. "
                f"Take it down with `virtdeck lab down` once nobody uses it")
    _reap_stray_cgroups(log)
    return found
