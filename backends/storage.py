"""libvirt storage on one hypervisor: per-VM overlays, seed ISOs, templates — all through the
storage pool/volume API (no file copying behind libvirt's back).

Every function takes an open ``libvirt.virConnect`` (``Session.libvirt(host)``) and the host's
name (for messages). Errors are :class:`console.errors.HostError` "HOST: what failed: libvirt's
message". Sizes: disks in GiB at this API, bytes inside (libvirt's unit).

- :func:`create_overlay` — qcow2 volume whose backing store is the template volume, sized to the
  VM's disk (GiB; must be ≥ the template's virtual size).
- :func:`upload_volume` — create a volume and stream bytes into it (``virStorageVol.upload`` over a
  ``virStream``): used for seed ISOs (bytes) and templates (a local file), with a progress callback.
- :func:`upload_template` — upload + sha256 verified ON THE HOST (``sha256sum`` over SSH) against
  the pinned sum; a mismatch deletes the volume. An operator who may not read the volume's file
  (non-root, in the ``libvirt`` group) gets the sum of the bytes read back through libvirt
  (:func:`sha256_of_volume`): nothing here needs root on the host.
- :func:`delete_volume`, :func:`volumes_backed_by`, :func:`list_volumes`.
"""

from __future__ import annotations

import os
import time
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator

import libvirt

from ..console.errors import HostError

GiB = 1024 ** 3
CHUNK = 256 * 1024

#: progress(sent_bytes, total_bytes)
Progress = Callable[[int, int], None]


def _msg(exc: libvirt.libvirtError) -> str:
    return exc.get_error_message() or str(exc)


def _err(host: str, what: str, exc: libvirt.libvirtError) -> HostError:
    err = HostError(f"{host}: {what}: {_msg(exc)}")
    err.libvirt_message = _msg(exc)  # as backends.domains.host_error does (domains.why reads it)
    return err


@dataclass(frozen=True)
class VolumeInfo:
    """One volume: name, path on the host, format (qcow2/raw/iso), capacity and allocation in
    bytes (libvirt's unit), and the backing file path (None if none)."""

    name: str
    path: str
    format: str | None
    capacity_bytes: int
    allocation_bytes: int
    backing_path: str | None

    @property
    def capacity_gib(self) -> float:
        return self.capacity_bytes / GiB


def get_pool(conn: libvirt.virConnect, host: str, pool: str) -> libvirt.virStoragePool:
    """The active storage pool ``pool``; raises HostError if it is missing or inactive."""
    try:
        p = conn.storagePoolLookupByName(pool)
    except libvirt.libvirtError as exc:
        raise _err(host, f"storage pool {pool!r}", exc) from None
    try:
        if not p.isActive():
            raise HostError(f"{host}: storage pool {pool!r} is not active (virsh pool-start {pool})")
    except libvirt.libvirtError as exc:
        raise _err(host, f"storage pool {pool!r}", exc) from None
    return p


def _lookup(p: libvirt.virStoragePool, name: str) -> libvirt.virStorageVol | None:
    try:
        return p.storageVolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            return None
        raise


def _refresh(p: libvirt.virStoragePool, wait: float = 10.0) -> bool:
    """Re-scan pool ``p`` (``virStoragePoolRefresh``). libvirt refuses while another client
    creates or uploads a volume in it ("asynchronous jobs running", e.g. a second create on the
    same host); that is retried every 0.2 s for up to ``wait`` seconds, then given up: volumes
    made through libvirt are in its listing anyway, only files put there behind its back and
    a fresh format probe are missed. Returns True when the refresh ran; other libvirt errors
    raise libvirtError."""
    deadline = time.monotonic() + wait
    while True:
        try:
            p.refresh(0)
            return True
        except libvirt.libvirtError as exc:
            if "asynchronous jobs" not in _msg(exc):
                raise
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)


def find_volume(conn: libvirt.virConnect, host: str, pool: str, name: str,
                refresh: bool = True) -> libvirt.virStorageVol | None:
    """The volume ``name`` in ``pool``, or None. With ``refresh`` a miss re-scans the pool once
    (volumes put there by other tools appear only after a refresh)."""
    p = get_pool(conn, host, pool)
    try:
        vol = _lookup(p, name)
        if vol is None and refresh and _refresh(p):
            vol = _lookup(p, name)
        return vol
    except libvirt.libvirtError as exc:
        raise _err(host, f"volume {pool}/{name}", exc) from None


def volume_info(vol: libvirt.virStorageVol) -> VolumeInfo:
    """Facts of ``vol`` from its XML (``virStorageVolGetXMLDesc``)."""
    root = ET.fromstring(vol.XMLDesc(0))
    fmt = root.find("target/format")
    backing = root.findtext("backingStore/path")
    return VolumeInfo(
        name=root.findtext("name") or vol.name(),
        path=root.findtext("target/path") or vol.path(),
        format=fmt.get("type") if fmt is not None else None,
        capacity_bytes=int(root.findtext("capacity") or 0),
        allocation_bytes=int(root.findtext("allocation") or 0),
        backing_path=backing or None,
    )


def list_volumes(conn: libvirt.virConnect, host: str, pool: str) -> list[VolumeInfo]:
    """Every volume in ``pool`` (after a refresh), sorted by name.

    While another client creates or uploads a volume libvirt refuses the refresh
    (:func:`_refresh`); the listing libvirt holds is then used as it is."""
    p = get_pool(conn, host, pool)
    try:
        _refresh(p, wait=0)
        return sorted((volume_info(v) for v in p.listAllVolumes(0)), key=lambda v: v.name)
    except libvirt.libvirtError as exc:
        raise _err(host, f"listing pool {pool!r}", exc) from None


def volumes_backed_by(conn: libvirt.virConnect, host: str, pool: str, path: str) -> list[str]:
    """Names of the volumes in ``pool`` whose backing file is ``path`` (a template's path)."""
    return [v.name for v in list_volumes(conn, host, pool) if v.backing_path == path]


def create_overlay(conn: libvirt.virConnect, host: str, pool: str, name: str,
                   template_volume: str, size_gib: int) -> VolumeInfo:
    """Create qcow2 volume ``name`` backed by ``template_volume`` (same pool), ``size_gib`` GiB.

    The disk is sized at creation (libvirt runs ``qemu-img create -b``); a size below the
    template's virtual size is refused. Raises HostError (exists already, template missing,
    libvirt refused).
    """
    p = get_pool(conn, host, pool)
    base = find_volume(conn, host, pool, template_volume)
    if base is None:
        raise HostError(f"{host}: template volume {pool}/{template_volume} is not there "
                        f"(`virtdeck template add` uploads it)")
    binfo = volume_info(base)
    want = int(size_gib) * GiB
    if want < binfo.capacity_bytes:
        raise HostError(f"{host}: disk {size_gib} GiB is smaller than template {template_volume}'s "
                        f"{binfo.capacity_bytes / GiB:g} GiB")
    if _lookup(p, name) is not None:
        raise HostError(f"{host}: volume {pool}/{name} already exists")
    root = ET.Element("volume")
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "capacity", unit="bytes").text = str(want)
    target = ET.SubElement(root, "target")
    ET.SubElement(target, "format", type="qcow2")
    bs = ET.SubElement(root, "backingStore")
    ET.SubElement(bs, "path").text = binfo.path
    ET.SubElement(bs, "format", type=binfo.format or "qcow2")
    try:
        vol = p.createXML(ET.tostring(root, encoding="unicode"), 0)
    except libvirt.libvirtError as exc:
        raise _err(host, f"creating overlay {pool}/{name} on {template_volume}", exc) from None
    return volume_info(vol)


@contextmanager
def _stream(conn, host: str, what: str) -> Iterator[libvirt.virStream]:
    """A new ``virStream`` for one transfer; on any failure it is aborted (quietly) and a
    ``libvirtError`` becomes HostError "HOST: what: …" (other exceptions pass through)."""
    stream = conn.newStream(0)
    try:
        yield stream
    except BaseException as exc:
        try:
            stream.abort()
        except libvirt.libvirtError:
            pass
        if isinstance(exc, libvirt.libvirtError):
            raise _err(host, what, exc) from None
        raise


def _send_all(conn, host: str, vol: libvirt.virStorageVol, src: BinaryIO, total: int,
              progress: Progress | None, what: str) -> None:
    sent = 0
    with _stream(conn, host, what) as stream:
        vol.upload(stream, 0, total, 0)
        if progress:
            progress(0, total)
        while sent < total:
            chunk = src.read(min(CHUNK, total - sent))
            if not chunk:
                raise HostError(f"{host}: {what}: the source ended after {sent} of {total} bytes")
            view = memoryview(chunk)
            while view:
                n = stream.send(view.tobytes())
                if n < 0:
                    raise HostError(f"{host}: {what}: stream refused data")
                view = view[n:]
            sent += len(chunk)
            if progress:
                progress(sent, total)
        stream.finish()


def download_volume(conn: libvirt.virConnect, host: str, vol: libvirt.virStorageVol,
                    sink: BinaryIO, what: str | None = None) -> int:
    """Write ``vol``'s whole content to ``sink`` through the storage API
    (``virStorageVolDownload``); returns the bytes written. Raises HostError naming ``host``."""
    what = what or f"reading volume {vol.name()}"
    written = 0
    with _stream(conn, host, what) as stream:
        vol.download(stream, 0, 0, 0)
        while True:
            data = stream.recv(CHUNK)
            if data == -2:  # would block: not on a blocking stream, but be safe
                time.sleep(0.01)
                continue
            if not data:
                break
            sink.write(data)
            written += len(data)
        stream.finish()
    return written


def upload_volume(conn: libvirt.virConnect, host: str, pool: str, name: str,
                  data: bytes | str | os.PathLike, *, fmt: str = "raw",
                  progress: Progress | None = None) -> VolumeInfo:
    """Create volume ``name`` and stream ``data`` into it (bytes, or a local file path).

    ``fmt`` is the format recorded at creation ("raw" for an ISO; a qcow2 image uploaded byte for
    byte is probed as qcow2 after the pool refresh). ``progress(sent, total)`` is called per chunk.
    On any failure the half-written volume is deleted. Raises HostError.
    """
    import io
    p = get_pool(conn, host, pool)
    if _lookup(p, name) is not None:
        raise HostError(f"{host}: volume {pool}/{name} already exists")
    if isinstance(data, (bytes, bytearray)):
        total, src = len(data), io.BytesIO(data)
    else:
        total, src = os.path.getsize(data), open(data, "rb")
    root = ET.Element("volume")
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "capacity", unit="bytes").text = str(total)
    ET.SubElement(root, "allocation", unit="bytes").text = "0"
    target = ET.SubElement(root, "target")
    ET.SubElement(target, "format", type=fmt)
    try:
        try:
            vol = p.createXML(ET.tostring(root, encoding="unicode"), 0)
        except libvirt.libvirtError as exc:
            raise _err(host, f"creating volume {pool}/{name}", exc) from None
        try:
            _send_all(conn, host, vol, src, total, progress, f"uploading {pool}/{name}")
            _refresh(p)  # re-probes the format; waits out another client's upload
            vol = p.storageVolLookupByName(name)
        except BaseException:
            _delete_quietly(p, name)
            raise
    finally:
        src.close()
    return volume_info(vol)


def _delete_quietly(p: libvirt.virStoragePool, name: str) -> None:
    try:
        vol = _lookup(p, name)
        if vol is not None:
            vol.delete(0)
    except libvirt.libvirtError:
        pass


def delete_volume(conn: libvirt.virConnect, host: str, pool: str, name: str,
                  missing_ok: bool = True) -> bool:
    """Delete volume ``name``. Returns True if it was deleted, False if it was not there (with
    ``missing_ok``; else HostError)."""
    p = get_pool(conn, host, pool)
    try:
        vol = _lookup(p, name)
        if vol is None:
            if missing_ok:
                return False
            raise HostError(f"{host}: volume {pool}/{name} is not there")
        vol.delete(0)
        return True
    except libvirt.libvirtError as exc:
        raise _err(host, f"deleting volume {pool}/{name}", exc) from None


def sha256_of_volume(conn: libvirt.virConnect, host: str, vol: libvirt.virStorageVol) -> str:
    """sha256 (hex) of ``vol``'s bytes as stored on ``host``, read back through the storage API
    (``virStorageVolDownload`` over the libvirt connection) and hashed here. Needs no file
    access on the host (a non-root operator in the ``libvirt`` group), at the cost of moving the
    volume once over the link. Raises HostError naming ``host``."""
    import hashlib

    class _Sink:
        def __init__(self):
            self.h = hashlib.sha256()

        def write(self, data: bytes) -> None:
            self.h.update(data)

    sink = _Sink()
    download_volume(conn, host, vol, sink, what=f"reading volume {vol.name()} for its sha256")
    return sink.h.hexdigest()


def sha256_on_host(session, host: str, path: str, timeout: float = 300.0) -> str:
    """sha256 of the file at ``path`` on ``host``: ``sha256sum`` run there over SSH (the bytes
    stay on the host). When the operator may not read the file (libvirt makes volumes 0600
    root; a non-root operator in the ``libvirt`` group), the volume at ``path`` is read back
    through libvirt instead (:func:`sha256_of_volume`). Raises HostError when neither works
    (not a pool volume and not readable: the message names the permission)."""
    res = session.run(host, ["sha256sum", "--", path], timeout=timeout)
    if res.rc == 0 and res.stdout.strip():
        return res.stdout.split()[0].lower()
    err = res.stderr.strip() or f"exit {res.rc}"
    if "ermission denied" in err:
        conn = session.libvirt(host)
        vol = volume_at(conn, host, path)
        if vol is not None:
            return sha256_of_volume(conn, host, vol)
        raise HostError(f"{host}: sha256sum {path}: the operator may not read it and it is not a "
                        f"libvirt volume (make it readable, or put it in a storage pool)")
    raise HostError(f"{host}: sha256sum {path} failed: {err}")


def upload_template(session, host: str, pool: str, name: str, src: str | os.PathLike,
                    sha256: str, *, progress: Progress | None = None) -> VolumeInfo:
    """Upload local file ``src`` as volume ``name`` and verify its sha256 ON the host.

    ``session`` is a :class:`backends.session.Session` (libvirt + SSH to ``host``). A checksum
    mismatch deletes the volume and raises HostError naming both sums; nothing is kept.
    """
    conn = session.libvirt(host)
    info = upload_volume(conn, host, pool, name, src, fmt="raw", progress=progress)
    try:
        got = sha256_on_host(session, host, info.path)
    except BaseException:
        delete_volume(conn, host, pool, name)
        raise
    if got != sha256.lower():
        delete_volume(conn, host, pool, name)
        raise HostError(f"{host}: checksum mismatch for {pool}/{name}: the host computed {got}, "
                        f"the template is pinned to {sha256.lower()}; the volume was deleted")
    return info


def volume_at(conn: libvirt.virConnect, host: str, path: str) -> libvirt.virStorageVol | None:
    """The storage volume at ``path`` (a file path, or ``pool:POOL/VOL`` as
    :class:`backends.domain_facts.DomainFacts` spells pool disks), or None when it is not a pool volume.
    Raises HostError for any other libvirt failure."""
    try:
        if path.startswith("pool:"):
            pool, vol = path[5:].split("/", 1)
            return conn.storagePoolLookupByName(pool).storageVolLookupByName(vol)
        return conn.storageVolLookupByPath(path)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in (libvirt.VIR_ERR_NO_STORAGE_VOL, libvirt.VIR_ERR_NO_STORAGE_POOL):
            return None
        raise _err(host, f"looking up volume {path}", exc) from None


def pool_of(vol: libvirt.virStorageVol, host: str) -> str:
    """The name of the pool holding ``vol``. Raises HostError."""
    try:
        return vol.storagePoolLookupByVolume().name()
    except libvirt.libvirtError as exc:
        raise _err(host, f"pool of volume {vol.name()}", exc) from None


def remove_volume(vol: libvirt.virStorageVol, host: str) -> None:
    """Delete the volume object ``vol`` (its file goes). Raises HostError ("<host>: deleting
    volume <name>: …")."""
    try:
        vol.delete(0)
    except libvirt.libvirtError as exc:
        raise _err(host, f"deleting volume {vol.name()}", exc) from None

