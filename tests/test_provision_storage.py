"""Storage through the libvirt volume API on a lab hypervisor (backends/storage.py)."""

from __future__ import annotations

import hashlib
import os
import uuid

import libvirt
import pytest

from virtdeck.backends import storage
from virtdeck.console.errors import HostError
from provision_helpers import lab_inventory, lab_session  # noqa: F401 (fixtures)

pytestmark = pytest.mark.lab
HOST = "hv1"


@pytest.fixture
def conn(lab_session):
    return lab_session.libvirt(HOST)


@pytest.fixture
def tpl(lab_inventory):
    return lab_inventory.template("debian12")


def _name(suffix: str) -> str:
    return f"t-{uuid.uuid4().hex[:8]}{suffix}"


def _download(conn, vol) -> bytes:
    stream = conn.newStream(0)
    vol.download(stream, 0, 0, 0)
    chunks = []
    while True:
        b = stream.recv(65536)
        if not b:
            break
        chunks.append(b)
    stream.finish()
    return b"".join(chunks)


def test_overlay_on_template(conn, tpl):
    name = _name(".qcow2")
    info = storage.create_overlay(conn, HOST, tpl.pool, name, tpl.volume, 4)
    try:
        base = storage.volume_info(storage.find_volume(conn, HOST, tpl.pool, tpl.volume))
        assert info.format == "qcow2" and info.capacity_bytes == 4 * storage.GiB
        assert info.backing_path == base.path
        assert info.allocation_bytes < 16 * 1024 * 1024  # an overlay, not a copy
        assert storage.volumes_backed_by(conn, HOST, tpl.pool, base.path).count(name) == 1
        with pytest.raises(HostError, match="already exists"):
            storage.create_overlay(conn, HOST, tpl.pool, name, tpl.volume, 4)
    finally:
        assert storage.delete_volume(conn, HOST, tpl.pool, name) is True
    assert storage.delete_volume(conn, HOST, tpl.pool, name) is False
    assert storage.find_volume(conn, HOST, tpl.pool, name) is None


def test_overlay_refusals(conn, tpl):
    with pytest.raises(HostError, match=r"hv1: disk 1 GiB is smaller than template"):
        storage.create_overlay(conn, HOST, tpl.pool, _name(".qcow2"), tpl.volume, 1)
    with pytest.raises(HostError, match="not there"):
        storage.create_overlay(conn, HOST, tpl.pool, _name(".qcow2"), "no-such.qcow2", 4)
    with pytest.raises(HostError, match="hv1: storage pool 'nopool'"):
        storage.create_overlay(conn, HOST, "nopool", _name(".qcow2"), tpl.volume, 4)


def test_upload_bytes_with_progress(conn, tpl):
    data = os.urandom(700_000)
    seen = []
    name = _name("-seed.iso")
    info = storage.upload_volume(conn, HOST, tpl.pool, name, data, progress=lambda s, t: seen.append((s, t)))
    try:
        assert info.capacity_bytes == len(data)
        assert seen[0] == (0, len(data)) and seen[-1] == (len(data), len(data)) and len(seen) >= 4
        vol = storage.find_volume(conn, HOST, tpl.pool, name)
        assert _download(conn, vol) == data
    finally:
        storage.delete_volume(conn, HOST, tpl.pool, name)


def test_template_upload_checksum_on_host(lab_session, conn, tpl, tmp_path):
    src = tmp_path / "img.raw"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 123))
    good = hashlib.sha256(src.read_bytes()).hexdigest()
    name = _name(".raw")
    info = storage.upload_template(lab_session, HOST, tpl.pool, name, src, good)
    try:
        assert storage.sha256_on_host(lab_session, HOST, info.path) == good
    finally:
        storage.delete_volume(conn, HOST, tpl.pool, name)
    bad = "0" * 64
    with pytest.raises(HostError, match=f"checksum mismatch .* the host computed {good}"):
        storage.upload_template(lab_session, HOST, tpl.pool, name, src, bad)
    assert storage.find_volume(conn, HOST, tpl.pool, name) is None  # nothing kept


def test_upload_failure_leaves_nothing(conn, tpl, tmp_path):
    class Boom(Exception):
        pass

    def progress(sent, total):
        if sent > 300_000:
            raise Boom()
    name = _name("-seed.iso")
    with pytest.raises(Boom):
        storage.upload_volume(conn, HOST, tpl.pool, name, os.urandom(1_000_000), progress=progress)
    assert storage.find_volume(conn, HOST, tpl.pool, name) is None
    assert isinstance(conn, libvirt.virConnect)
