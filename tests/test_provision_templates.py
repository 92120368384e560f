"""Templates on the lab: `virtdeck template add | list | delete` through the real CLI entry point."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid

import pytest

from virtdeck.backends import storage
from virtdeck.config.inventory import load, save
from virtdeck.console.cli import main
from provision_helpers import lab_inventory, lab_session  # noqa: F401

pytestmark = pytest.mark.lab


@pytest.fixture
def inv_path(lab_inventory, tmp_path, monkeypatch):
    """A private copy of the lab inventory (the CLI writes templates into it)."""
    path = tmp_path / "inventory.toml"
    save(lab_inventory, path)
    monkeypatch.setenv("VIRTDECK_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    return path


@pytest.fixture
def image(tmp_path):
    img = tmp_path / "tiny.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "1G"], check=True)
    return img


def test_add_list_delete(inv_path, image, lab_session, capsys):
    name = f"t4tpl{uuid.uuid4().hex[:6]}"
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    hosts = [h.name for h in load(inv_path).hypervisors if h.enabled]
    try:
        # a mismatch is refused before anything is uploaded
        rc = main(["--config", str(inv_path), "template", "add", name, str(image), "--sha256", "0" * 64])
        assert rc == 2 and "nothing was uploaded" in capsys.readouterr().err
        rc = main(["--config", str(inv_path), "template", "add", name, str(image), "--sha256", digest])
        out = capsys.readouterr()
        assert rc == 0, out.err
        assert "100%" in out.err  # the progress bar reached the end on every host
        assert f"template {name} added" in out.out
        tpl = load(inv_path).template(name)
        assert tpl.sha256 == digest and tpl.volume == f"{name}.qcow2"
        for h in hosts:
            vol = storage.find_volume(lab_session.libvirt(h), h, "virtdeck", tpl.volume)
            assert storage.sha256_on_host(lab_session, h, storage.volume_info(vol).path) == digest
        assert main(["--config", str(inv_path), "--json", "template", "list"]) == 0
        rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
        assert all(h["present"] for h in rows[name]["hosts"])
        # in use as a backing file: delete refused, nothing removed
        conn = lab_session.libvirt(hosts[0])
        storage.create_overlay(conn, hosts[0], "virtdeck", f"{name}-user.qcow2", tpl.volume, 1)
        rc = main(["--config", str(inv_path), "template", "delete", name])
        assert rc == 4 and f"{hosts[0]}:{name}-user.qcow2" in capsys.readouterr().err  # in use
        assert load(inv_path).template(name)
        storage.delete_volume(conn, hosts[0], "virtdeck", f"{name}-user.qcow2")
        assert main(["--config", str(inv_path), "template", "delete", name]) == 0
        assert name not in [t.name for t in load(inv_path).templates]
        for h in hosts:
            assert storage.find_volume(lab_session.libvirt(h), h, "virtdeck", f"{name}.qcow2") is None
    finally:
        for h in hosts:
            for v in (f"{name}.qcow2", f"{name}-user.qcow2"):
                storage.delete_volume(lab_session.libvirt(h), h, "virtdeck", v)


def test_mismatch_on_host_keeps_nothing(inv_path, image, lab_session, monkeypatch):
    """The host computes another sum than the pinned one (here: the file changes after the local
    check): every volume uploaded by the call is removed, the inventory is untouched."""
    from virtdeck.console.services import templates
    name = f"t4tpl{uuid.uuid4().hex[:6]}"
    inv = load(inv_path)
    real = storage.upload_template
    calls = []

    def tamper(session, host, pool, vol, src, sha256, progress=None):
        calls.append(host)
        if len(calls) == 2:  # the second host gets different bytes than were checked locally
            with open(src, "ab") as f:
                f.write(b"tampered")
        return real(session, host, pool, vol, src, sha256, progress=progress)

    monkeypatch.setattr(storage, "upload_template", tamper)
    hosts = [h.name for h in inv.hypervisors if h.enabled]
    if len(hosts) < 2:
        pytest.skip("needs two hypervisors")
    with pytest.raises(Exception, match="checksum mismatch"):
        templates.add_template(lab_session, inv, name, image)
    for h in hosts:
        assert storage.find_volume(lab_session.libvirt(h), h, "virtdeck", f"{name}.qcow2") is None
    assert name not in [t.name for t in load(inv_path).templates]
