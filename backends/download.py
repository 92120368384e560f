"""A hypervisor downloads an image itself (curl over its SSH link), resumably, sha256-verified.

:func:`download_volume` fetches ``url`` ON the host into a hidden partial file in the storage
pool's directory (``.<volume>.<sha256[:16]>.part``: libvirt's dir pool lists no dot files, and the
sum in the name keeps a partial of another image from being resumed), with ``curl -C -`` so a
partial left by an interrupted run is continued, not restarted. Progress comes from polling the
partial's size (``stat``) beside the running curl. Then ``sha256sum`` runs on the host: a mismatch
deletes the partial (nothing kept); a match renames it to the volume's name and refreshes the pool,
so the volume exists only once its content is proven.

An interrupted call (Ctrl-C, SIGTERM, a failure elsewhere) stops the host's curl by the PID it
wrote and keeps the partial for the next run; :func:`discard_partial` removes it.

A non-root operator (in the ``libvirt`` group) may not write the pool's directory, which root
owns: then the partial is kept in the operator's cache on the host
(``${XDG_CACHE_HOME:-~/.cache}/virtdeck/downloads``) and, once verified, handed to libvirtd with
``virsh vol-create-as`` + ``vol-upload`` on the host itself (a local copy through libvirtd's
socket; the image crosses no network twice), then the cached file is removed. The host needs the
image's size free twice while that runs.
"""

from __future__ import annotations

import shlex
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Callable

import libvirt

from ..console.errors import ConfigError, HostError
from .storage import get_pool

#: progress(sent bytes, total bytes or 0 when the server gave no length)
Progress = Callable[[int, int], None]


def pool_dir(conn: libvirt.virConnect, host: str, pool: str) -> str:
    """The directory of dir pool ``pool`` on ``host`` (its ``<target><path>``). Raises HostError
    when the pool is missing or not a directory pool."""
    p = get_pool(conn, host, pool)
    try:
        root = ET.fromstring(p.XMLDesc(0))
    except libvirt.libvirtError as exc:
        raise HostError(f"{host}: pool {pool}: {exc.get_error_message()}") from None
    path = root.findtext("target/path")
    if root.get("type") != "dir" or not path:
        raise HostError(f"{host}: pool {pool} is a {root.get('type')!r} pool; downloads need a 'dir' pool")
    return path


def refresh_pool(conn: libvirt.virConnect, host: str, pool: str) -> None:
    """Make libvirt list files that appeared in ``pool``'s directory. Raises HostError."""
    try:
        get_pool(conn, host, pool).refresh(0)
    except libvirt.libvirtError as exc:
        raise HostError(f"{host}: refreshing pool {pool}: {exc.get_error_message()}") from None


def partial_path(directory: str, volume: str, sha256: str) -> str:
    """Where the download of ``volume`` pinned to ``sha256`` is kept until verified."""
    return f"{directory}/.{volume}.{sha256[:16]}.part"


def remote_length(session, host: str, url: str) -> int:
    """The ``Content-Length`` the server announces for ``url``, asked from ``host`` (0 when it
    gives none or the request fails: progress then shows bytes only)."""
    res = session.run(host, ["curl", "-fsSLI", "--max-time", "20", url], timeout=30)
    length = 0
    for line in res.stdout.splitlines():
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length" and v.strip().isdigit():
            length = int(v.strip())  # the last one wins (after redirects)
    return length


# where a non-root operator's partial waits on the host (the pool directory is root's)
STAGE_DIR = '"${XDG_CACHE_HOME:-$HOME/.cache}/virtdeck/downloads"'


def stage_dir(session, host: str, directory: str) -> str | None:
    """None when the SSH user may write ``directory`` (the pool's) on ``host``; else the absolute
    path of the operator's download cache there (:data:`STAGE_DIR`, created). Raises HostError
    when neither is writable."""
    script = (f"[ -w {shlex.quote(directory)} ] && exit 0; d={STAGE_DIR}; "
              f"mkdir -p \"$d\" && cd \"$d\" && pwd -P && exit 0; exit 3")
    res = session.run(host, ["sh", "-c", script], timeout=15)
    if res.rc == 0:
        return res.stdout.strip() or None
    raise HostError(f"{host}: the operator may write neither pool directory {directory} nor a "
                    f"download cache in its home ({res.stderr.strip()[-160:] or 'mkdir failed'}); "
                    f"fix on {host}: give it a writable home, or make the pool directory group-writable")


def local_uri(socket: str = "/run/libvirt/libvirt-sock") -> str:
    """The libvirt URI a command run ON a hypervisor uses for its own libvirtd at ``socket`` (the
    inventory's ``libvirt_socket``): plain ``qemu:///system`` for the default socket."""
    return "qemu:///system" if socket == "/run/libvirt/libvirt-sock" else f"qemu:///system?socket={socket}"


def _host_uri(session, host: str) -> str:
    inv = getattr(session, "inventory", None)
    try:
        return local_uri(inv.host(host).libvirt_socket)
    except (AttributeError, ConfigError):  # no inventory (tests, scripts) or a host not in it
        return local_uri()


def _upload(session, host: str, pool: str, volume: str, part: str, size: int) -> None:
    """Make ``part`` (a verified file the operator owns on ``host``) the volume ``volume`` of
    ``pool`` through libvirtd on that host (``virsh vol-create-as`` raw of ``size`` bytes +
    ``vol-upload``; the pool refresh after it probes the real format, qcow2 or raw). A failed
    upload deletes the half-made volume. Raises HostError."""
    q, v = shlex.quote(pool), shlex.quote(volume)
    virsh = f"virsh -q -c {shlex.quote(_host_uri(session, host))}"
    script = (f"{virsh} vol-create-as --pool {q} --name {v} --capacity {size}b --format raw >/dev/null "
              f"|| exit 91; {virsh} vol-upload --pool {q} --vol {v} --file {shlex.quote(part)} && exit 0; "
              f"rc=$?; {virsh} vol-delete --pool {q} --vol {v} >/dev/null 2>&1; exit $rc")
    res = session.run(host, ["sh", "-c", script], timeout=3600)
    if res.rc != 0:
        what = "create" if res.rc == 91 else "upload into"
        raise HostError(f"{host}: libvirt could not {what} volume {pool}/{volume}: "
                        f"{res.stderr.strip()[-200:] or f'virsh exit {res.rc}'}; the verified download is kept at {part}")


def download_volume(session, conn: libvirt.virConnect, host: str, pool: str, volume: str, url: str,
                    sha256: str, *, progress: Progress | None = None, poll: float = 0.5,
                    timeout: float = 6 * 3600, limit_rate: str | None = None,
                    cancel: threading.Event | None = None,
                    inspect: Callable[[str], object] | None = None) -> str:
    """Download ``url`` on ``host`` as volume ``volume`` of dir pool ``pool``; returns its path.

    ``sha256``: the pinned sum (64 hex). ``limit_rate``: curl's ``--limit-rate`` (e.g. '20M'),
    for slow links or tests. ``cancel``: set by another thread to stop the download (curl on
    the host is stopped, the partial kept; raises InterruptedError). Raises HostError: curl failed (its message; the partial is kept
    for a resume), the sum differs (the partial is deleted, nothing kept), or the volume name
    is taken. A BaseException while waiting (interrupt) stops curl on the host and propagates.
    ``inspect``: called with the verified file's path on the host before it becomes a volume (the
    template's image probe, which a non-root operator could not run on the root-owned volume);
    what it raises deletes the download and propagates.
    """
    directory = pool_dir(conn, host, pool)
    final = f"{directory}/{volume}"
    staged = stage_dir(session, host, directory)
    part = partial_path(staged or directory, volume, sha256)
    pidfile = part + ".pid"
    total = remote_length(session, host, url) if progress else 0
    curl = ["curl", "-fsSL", "--retry", "3", "-C", "-", "-o", part]
    if limit_rate:
        curl += ["--limit-rate", limit_rate]
    script = (f"[ -e {shlex.quote(final)} ] && {{ echo 'volume exists' >&2; exit 90; }}; "
              f"echo $$ > {shlex.quote(pidfile)}; exec {shlex.join(curl + ['--', url])}")
    result: dict = {}

    def fetch():
        try:
            result["res"] = session.run(host, ["sh", "-c", script], timeout=timeout)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            result["exc"] = exc

    worker = threading.Thread(target=fetch, name=f"download-{host}", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(poll)
            if cancel is not None and cancel.is_set():
                raise InterruptedError(f"{host}: download of {url} stopped; the partial file is kept")
            if progress and worker.is_alive():
                size = session.run(host, ["sh", "-c", f"stat -c %s {shlex.quote(part)} 2>/dev/null || echo 0"],
                                   timeout=15).stdout.strip()
                progress(int(size) if size.isdigit() else 0, total)
    except BaseException:
        _stop(session, host, pidfile)
        raise
    if "exc" in result:
        _stop(session, host, pidfile)
        raise result["exc"]
    res = result["res"]
    session.run(host, ["rm", "-f", pidfile], timeout=15)
    if res.rc == 90:
        raise HostError(f"{host}: {final} exists already; delete the volume first")
    if res.rc != 0:
        raise HostError(f"{host}: download of {url} failed (curl exit {res.rc}: "
                        f"{res.stderr.strip()[-200:] or 'no message'}); the partial file is kept for a resume")
    got = session.run(host, ["sha256sum", "--", part], timeout=1800)
    digest = got.stdout.split()[0].lower() if got.rc == 0 and got.stdout.strip() else ""
    if digest != sha256.lower():
        session.run(host, ["rm", "-f", "--", part], timeout=15)
        raise HostError(f"{host}: sha256 mismatch for {url}: the host computed {digest or '(nothing)'}, "
                        f"pinned {sha256.lower()}; the download was deleted")
    size = session.run(host, ["stat", "-c", "%s", part], timeout=15).stdout.strip()
    if inspect is not None:
        try:
            inspect(part)
        except BaseException:
            session.run(host, ["rm", "-f", "--", part], timeout=15)
            raise
    if staged:
        _upload(session, host, pool, volume, part, int(size) if size.isdigit() else 0)
        session.run(host, ["rm", "-f", "--", part], timeout=15)
    else:
        mv = session.run(host, ["mv", "-n", "--", part, final], timeout=15)
        if mv.rc != 0:
            raise HostError(f"{host}: cannot move the download into place: {mv.stderr.strip()}")
    refresh_pool(conn, host, pool)
    if progress and size.isdigit():
        progress(int(size), int(size))
    return final


def _stop(session, host: str, pidfile: str) -> None:
    """Stop the host's curl (by the PID it recorded); the partial stays for a resume."""
    try:
        session.run(host, ["sh", "-c", f"p=$(cat {shlex.quote(pidfile)} 2>/dev/null) && kill \"$p\" 2>/dev/null; "
                                       f"rm -f {shlex.quote(pidfile)}"], timeout=15)
    except BaseException:  # noqa: BLE001 - best effort while already failing
        pass


def discard_partial(session, conn: libvirt.virConnect, host: str, pool: str, volume: str, sha256: str) -> None:
    """Remove a kept partial download of ``volume`` on ``host``, in the pool's directory or the
    operator's download cache (no error when there is none)."""
    part = partial_path(pool_dir(conn, host, pool), volume, sha256)
    name = part.rsplit("/", 1)[1]
    session.run(host, ["sh", "-c", f"rm -f -- {shlex.quote(part)} {shlex.quote(part + '.pid')} "
                                   f"{STAGE_DIR}/{shlex.quote(name)} {STAGE_DIR}/{shlex.quote(name + '.pid')}"],
                timeout=15)


#: a partial nobody writes and untouched this long (seconds) is abandoned: `virtdeck check` lists
#: it and ``--fix`` deletes it; younger ones are kept for a resume (`template add` continues them)
ABANDONED_AFTER_S = 24 * 3600


@dataclass(frozen=True)
class Partial:
    """A partial download on a host: ``path``, ``size`` (bytes), ``age_s`` (seconds since it was
    last written) and ``writing`` (a curl of a `template add` is running on it now: its PID file
    names a live process)."""

    path: str
    size: int
    age_s: float
    writing: bool

    @property
    def abandoned(self) -> bool:
        return not self.writing and self.age_s >= ABANDONED_AFTER_S


def partials(session, host: str, directories: list[str]) -> list[Partial]:
    """The partial downloads (``.*.part``, :func:`partial_path`) in ``directories`` (the pools')
    and the operator's download cache on ``host``, with ONE SSH command. Raises HostError when SSH
    fails; a directory that does not exist or cannot be read lists nothing."""
    dirs = " ".join([shlex.quote(d) for d in directories] + [STAGE_DIR])
    script = (f"now=$(date +%s); for d in {dirs}; do for f in \"$d\"/.*.part; do [ -f \"$f\" ] || continue; "
              "p=$(cat \"$f.pid\" 2>/dev/null); w=0; [ -n \"$p\" ] && [ -d /proc/$p ] && w=1; "
              "echo \"$(stat -c '%s %Y' \"$f\") $now $w $f\"; done; done")
    res = session.run(host, ["sh", "-c", script], timeout=30)
    if res.rc != 0:
        raise HostError(f"{host}: cannot list partial downloads: {res.stderr.strip()[-200:] or f'exit {res.rc}'}")
    out = []
    for line in res.stdout.splitlines():
        parts = line.split(" ", 4)
        if len(parts) == 5 and parts[0].isdigit() and parts[1].isdigit() and parts[2].isdigit():
            out.append(Partial(parts[4], int(parts[0]), max(0.0, float(int(parts[2]) - int(parts[1]))),
                               parts[3] == "1"))
    return out


def remove_partial(session, host: str, path: str) -> None:
    """Delete partial download ``path`` on ``host`` (and its PID file) unless a curl writes it
    now. Raises HostError when it is being written or cannot be removed."""
    if not path.endswith(".part") or "/." not in path:
        raise HostError(f"{host}: {path} is not a partial download")
    q = shlex.quote(path)
    res = session.run(host, ["sh", "-c", f"p=$(cat {q}.pid 2>/dev/null); [ -n \"$p\" ] && [ -d /proc/$p ] "
                                         f"&& {{ echo 'a download is writing it' >&2; exit 3; }}; rm -f -- {q} {q}.pid"],
                      timeout=15)
    if res.rc != 0:
        raise HostError(f"{host}: cannot remove {path}: {res.stderr.strip()[-200:] or f'exit {res.rc}'}")


def fetch_text(session, host: str, url: str, limit: int = 1 << 20) -> str:
    """A small text file (SHA256SUMS) fetched ON ``host``. Raises HostError when curl fails."""
    res = session.run(host, ["sh", "-c", f"curl -fsSL --max-time 60 -- {shlex.quote(url)} | head -c {limit}"],
                      timeout=90)
    if res.rc != 0 or not res.stdout:
        raise HostError(f"{host}: cannot fetch {url}: {res.stderr.strip()[-200:] or f'exit {res.rc}'}")
    return res.stdout
