"""seed.py, domain_xml.py and the image cache rules — no lab needed except where marked."""

from __future__ import annotations

import io
import json
import uuid
import xml.etree.ElementTree as ET

import pycdlib
import pytest

from virtdeck.backends.domain_xml import NS, DomainSpec, InstanceMeta, NicSpec, domain_xml, metadata_xml, parse_metadata
from virtdeck.backends.seed import build_nocloud_iso, read_nocloud_iso


def test_seed_iso_has_cidata_label_and_real_names():
    data = build_nocloud_iso("instance-id: i-1\n", "#cloud-config\nhostname: x\n", "version: 2\n")
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "cidata"
        assert iso.has_joliet() and iso.has_rock_ridge()
        names = sorted(c.file_identifier().decode("utf-16-be") for c in iso.list_children(joliet_path="/")
                       if not (c.is_dot() or c.is_dotdot()))
        assert names == ["meta-data", "network-config", "user-data"]
    finally:
        iso.close()
    docs = read_nocloud_iso(data)
    assert docs == {"meta-data": "instance-id: i-1\n", "user-data": "#cloud-config\nhostname: x\n",
                    "network-config": "version: 2\n"}
    assert len(data) < 512 * 1024


def test_seed_iso_without_network_config():
    docs = read_nocloud_iso(build_nocloud_iso("instance-id: a\n", "#cloud-config\n"))
    assert set(docs) == {"meta-data", "user-data"}


def spec(**kw):
    base = dict(name="vm1", uuid=str(uuid.uuid4()), vcpus=2, memory_mib=512,
                disk_path="/var/lib/libvirt/images/virtdeck/vm1.qcow2",
                seed_path="/var/lib/libvirt/images/virtdeck/vm1-seed.iso", domain_type="qemu",
                kernel="/k", initrd="/i", cmdline="root=/dev/vda ro console=ttyS0",
                nics=(NicSpec("52:54:00:aa:bb:cc", str(uuid.uuid4())),),
                serial_log="/var/log/libvirt/qemu/vm1-serial.log",
                metadata=InstanceMeta("demo", "debian12", "vm1-seed.iso", ("net-a", "net-b")))
    base.update(kw)
    return DomainSpec(**base)


def test_domain_xml_shape():
    s = spec()
    root = ET.fromstring(domain_xml(s))
    assert root.get("type") == "qemu"
    assert root.find("memory").get("unit") == "MiB" and root.find("memory").text == "512"
    assert root.find("os/type").get("machine") == "pc"
    assert root.find("os/kernel").text == "/k"
    cd = [d for d in root.findall("devices/disk") if d.get("device") == "cdrom"][0]
    assert cd.find("target").get("bus") == "ide"
    iface = root.find("devices/interface")
    assert iface.find("virtualport/parameters").get("interfaceid") == s.nics[0].interfaceid
    assert iface.find("source").get("bridge") == "br-int"
    assert iface.find("driver/host").get("csum") == "off"
    assert root.find("devices/serial/log").get("file") == s.serial_log
    assert parse_metadata(domain_xml(s)) == s.metadata
    assert parse_metadata(metadata_xml(s.metadata)) == s.metadata


def test_domain_xml_refuses_bad_specs():
    with pytest.raises(ValueError):
        domain_xml(spec(domain_type="xen"))
    with pytest.raises(ValueError):
        domain_xml(spec(nics=(NicSpec("52:54:00:aa:bb:cc", "not-a-uuid"),)))
    with pytest.raises(ValueError):
        domain_xml(spec(kernel=None))


@pytest.mark.lab
def test_domain_xml_accepted_by_lab_libvirtd_and_metadata_round_trips(lab):
    import libvirt
    from virtdeck.backends.lab.hosts import libvirt_uri
    s = spec(name=f"xmltest-{uuid.uuid4().hex[:6]}")
    conn = libvirt.open(libvirt_uri(lab.hypervisors[0]))
    try:
        dom = conn.defineXML(domain_xml(s))
        try:
            text = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, NS)
            assert parse_metadata(text) == s.metadata
            assert parse_metadata(dom.XMLDesc(0)) == s.metadata
            assert dom.maxMemory() == 512 * 1024  # KiB back from libvirt
        finally:
            dom.undefine()
    finally:
        conn.close()


def test_image_cache_is_invalidated_by_a_recipe_change(tmp_path):
    from virtdeck.backends.lab import image
    tpl = image.cached_template()
    if tpl is None:
        pytest.skip("no template built yet (the lab fixture builds it)")
    copy = tmp_path / image.NAME
    copy.mkdir()
    for f in tpl.qcow2.parent.iterdir():
        (copy / f.name).symlink_to(f)
    assert image.cached_template(tmp_path).sha256 == tpl.sha256
    (copy / "manifest.json").unlink()
    manifest = json.loads((tpl.qcow2.parent / "manifest.json").read_text())
    manifest["recipe"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert image.cached_template(tmp_path) is None
    manifest["recipe"] = image.recipe_hash()
    manifest["files"]["debian12.qcow2"] += 1   # damaged / truncated file
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert image.cached_template(tmp_path) is None
