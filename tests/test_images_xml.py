"""Boot modes in the domain XML (backends/domain_xml.py): direct kernel, disk BIOS, disk UEFI
(libvirt firmware autoselection, secure boot off unless asked), aarch64 'virt' with its CPU model,
SCSI seed cdrom and PL011 console. Pure XML; the lab tests boot each mode for real
(tests/e2e/test_cloud_images.py)."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

import pytest

from virtdeck.backends import domain_xml as dx


def _spec(**kw) -> dx.DomainSpec:
    base = dict(name="t", uuid=str(uuid.uuid4()), vcpus=1, memory_mib=512, disk_path="/p/t.qcow2",
                seed_path="/p/t-seed.iso", domain_type="qemu")
    base.update(kw)
    return dx.DomainSpec(**base)


def _xml(**kw) -> ET.Element:
    return ET.fromstring(dx.domain_xml(_spec(**kw)))


def test_default_boot_follows_the_kernel():
    assert dx.boot_mode(_spec(kernel="/k")) == "kernel"
    assert dx.boot_mode(_spec()) == "bios"
    root = _xml(kernel="/k", initrd="/i", cmdline="root=/dev/vda")
    assert root.findtext("os/kernel") == "/k" and root.find("os/boot") is None


def test_bios_boots_the_disk_on_pc():
    root = _xml(boot="bios")
    assert root.find("os").get("firmware") is None
    assert root.find("os/type").get("machine") == "pc"
    assert root.find("os/boot").get("dev") == "hd"
    assert root.find("devices/disk[@device='cdrom']/target").get("bus") == "ide"


def test_uefi_asks_libvirt_for_efi_firmware_without_secure_boot():
    root = _xml(boot="uefi")
    os_ = root.find("os")
    assert os_.get("firmware") == "efi"
    feats = {f.get("name"): f.get("enabled") for f in os_.findall("firmware/feature")}
    assert feats == {"secure-boot": "no", "enrolled-keys": "no"}
    assert root.find("features/smm") is None
    assert root.find("devices/disk[@device='cdrom']/target").get("bus") == "scsi"
    assert root.find("devices/controller[@type='scsi']").get("model") == "virtio-scsi"
    sb = _xml(boot="uefi", secure_boot=True, machine="q35")
    assert {f.get("name"): f.get("enabled") for f in sb.findall("os/firmware/feature")}["secure-boot"] == "yes"
    assert sb.find("features/smm").get("state") == "on"


def test_aarch64_gets_virt_cpu_model_scsi_seed_and_pl011():
    root = _xml(boot="uefi", arch="aarch64")
    assert root.find("os/type").get("machine") == "virt"
    assert root.find("os/type").get("arch") == "aarch64"
    assert root.findtext("cpu/model") == "cortex-a57"
    assert root.find("features/apic") is None
    assert root.find("devices/disk[@device='cdrom']/target").get("bus") == "scsi"
    assert root.find("devices/controller[@type='scsi']").get("model") == "virtio-scsi"
    assert root.find("devices/serial/target/model").get("name") == "pl011"
    kvm = _xml(boot="uefi", arch="aarch64", domain_type="kvm")
    assert kvm.find("cpu").get("mode") == "host-passthrough"


@pytest.mark.parametrize("kw, words", [
    (dict(boot="floppy"), "boot must be one of kernel, bios, uefi"),
    (dict(boot="kernel"), "needs a kernel"),
    (dict(boot="uefi", kernel="/k"), "kernel/initrd/cmdline are for 'kernel'"),
    (dict(boot="bios", arch="aarch64"), "not BIOS"),
    (dict(boot="bios", secure_boot=True), "secure_boot needs boot 'uefi'"),
    (dict(arch="riscv64"), "arch must be one of x86_64, aarch64"),
])
def test_bad_boot_specs_name_the_field(kw, words):
    with pytest.raises(ValueError, match=words):
        dx.domain_xml(_spec(**kw))


def test_libvirt_test_driver_accepts_every_mode():
    libvirt = pytest.importorskip("libvirt")
    conn = libvirt.open("test:///default")
    try:
        for kw in (dict(boot="bios"), dict(boot="uefi"), dict(kernel="/k", cmdline="root=/dev/vda")):
            dom = conn.defineXML(dx.domain_xml(_spec(name=f"t-{kw.get('boot', 'kernel')}", **kw)))
            dom.undefine()
    finally:
        conn.close()
