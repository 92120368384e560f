"""libvirt domain XML from a frozen spec, and the project's domain metadata element.

:func:`domain_xml` ``(DomainSpec) -> str`` builds a ``<domain>`` for a cloud guest:

- ``type`` 'kvm' (real hypervisors, the default) or 'qemu' (TCG: the lab, nested KVM hangs);
- memory in MiB (written with ``unit='MiB'``; libvirt reports KiB back), whole vCPUs; optional
  live-growth ceilings ``max_vcpus`` (``<vcpu current=N>MAX``: vCPU hot-plug up to MAX; not on
  aarch64, whose `virt` machine has no vCPU hot-plug) and
  ``max_memory_mib`` (``<memory>`` = MAX, ``<currentMemory>`` = the size, a virtio balloon: RAM
  grows live up to MAX). The guest sees MAX of RAM until its balloon driver loads early in boot;
  the scheduler counts the CURRENT size;
- ``arch`` x86_64: machine 'pc', the seed ISO an IDE cdrom (hdc) — the Debian cloud kernel has
  no AHCI — or, booting UEFI, a SCSI cdrom on virtio-scsi (an IDE probe once missed it under load);
  aarch64: machine 'virt' (no IDE there: the seed is a SCSI cdrom on virtio-scsi), CPU
  ``host-passthrough`` under KVM or model ``cortex-a57`` under TCG (no pointer authentication,
  which TCG emulates slowly), the serial console on the PL011 UART (ttyAMA0);
- disk: a qcow2 file (``disk_path``, usually a per-VM overlay on a template) as virtio ``vda``;
- boot mode (:data:`BOOT_MODES`): 'kernel' — direct kernel boot (kernel/initrd/cmdline are paths
  *on the hypervisor*); 'bios' — the disk's own bootloader through SeaBIOS; 'uefi' — the disk's
  EFI system partition through OVMF/AAVMF, chosen by libvirt's firmware autoselection
  (``<os firmware='efi'>`` + ``<firmware><feature name='secure-boot' enabled='no'/>``, the QEMU
  firmware descriptors in /usr/share/qemu/firmware). libvirt creates the per-VM NVRAM from the
  descriptor's varstore template (``/var/lib/libvirt/qemu/nvram/<name>_VARS.fd``); undefining with
  ``VIR_DOMAIN_UNDEFINE_NVRAM`` (backends/domains.py) removes it with the VM. ``secure_boot``
  asks for a Secure Boot firmware with enrolled keys (SMM on; x86_64 needs machine q35);
- NICs on the OVS bridge (default br-int) via ``<virtualport type='openvswitch'>`` with
  ``interfaceid`` = the OVN LSP's UUID (libvirt only accepts a UUID there and copies it to the
  OVS interface's ``external_ids:iface-id``), virtio, with checksum/segmentation offloads off
  (OVS userspace datapath: without it ICMP/DHCP work but TCP fails — LAB-NOTES.md);
- serial console on a pty (``virsh console`` / the console's serial view) plus, if
  ``serial_log`` is set, a log file of everything the guest printed (written by virtlogd);
- ``<metadata>`` with ``<virtdeck:instance>`` (namespace :data:`NS`): tenant, template, seed,
  networks — the systems-of-record way to know what a domain is for.

:func:`metadata_xml` gives the metadata element alone (for ``dom.setMetadata(
libvirt.VIR_DOMAIN_METADATA_ELEMENT, xml, PREFIX, NS)``); :func:`parse_metadata` reads it back
from a domain XML or the element text (``dom.metadata(VIR_DOMAIN_METADATA_ELEMENT, NS)``).
"""

from __future__ import annotations

import re
import uuid as uuidlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

NS = "https://virtdeck.dev/xmlns/domain/1.0"
PREFIX = "virtdeck"
ET.register_namespace(PREFIX, NS)

#: How a domain boots: direct kernel, the disk's BIOS bootloader, the disk's EFI system partition.
BOOT_MODES = ("kernel", "bios", "uefi")
#: Default machine type per guest arch.
MACHINES = {"x86_64": "pc", "aarch64": "virt"}
_MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
# Offloads off for the OVS userspace datapath (see module doc).
HOST_OFFLOADS_OFF = {"csum": "off", "gso": "off", "tso4": "off", "tso6": "off", "ecn": "off", "ufo": "off"}


@dataclass(frozen=True)
class NicSpec:
    """One NIC: ``mac`` (lower-case ``52:54:00:…``), ``interfaceid`` (LSP UUID), OVS ``bridge``,
    optional ``mtu`` in bytes (overlay networks: 1400 leaves room for GENEVE)."""

    mac: str
    interfaceid: str
    bridge: str = "br-int"
    mtu: int | None = None


@dataclass(frozen=True)
class InstanceMeta:
    """virtdeck's facts about a domain: tenant name, template name, seed (volume name or
    instance-id), network ids (OVN logical switch names/UUIDs), in NIC order."""

    tenant: str
    template: str = ""
    seed: str = ""
    networks: tuple[str, ...] = ()


@dataclass(frozen=True)
class DomainSpec:
    """Everything :func:`domain_xml` needs. Paths are as seen by the hypervisor's libvirtd."""

    name: str
    uuid: str
    vcpus: int
    memory_mib: int
    disk_path: str
    seed_path: str | None = None
    domain_type: str = "kvm"
    arch: str = "x86_64"
    machine: str | None = None  # None: MACHINES[arch]
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    nics: tuple[NicSpec, ...] = ()
    serial_log: str | None = None
    metadata: InstanceMeta | None = None
    disk_format: str = "qcow2"
    max_vcpus: int | None = None
    max_memory_mib: int | None = None
    boot: str | None = None  # one of BOOT_MODES; None: 'kernel' when a kernel is given, else 'bios'
    secure_boot: bool = False
    extra: dict = field(default_factory=dict, compare=False)


def _validate(spec: DomainSpec) -> None:
    if spec.domain_type not in ("kvm", "qemu"):
        raise ValueError(f"domain_type must be 'kvm' or 'qemu', not {spec.domain_type!r}")
    if spec.vcpus < 1 or spec.memory_mib < 16:
        raise ValueError("vcpus must be >= 1 and memory_mib >= 16")
    if spec.max_vcpus is not None and spec.max_vcpus < spec.vcpus:
        raise ValueError(f"max_vcpus ({spec.max_vcpus}) is below vcpus ({spec.vcpus})")
    if spec.max_memory_mib is not None and spec.max_memory_mib < spec.memory_mib:
        raise ValueError(f"max_memory_mib ({spec.max_memory_mib}) is below memory_mib ({spec.memory_mib})")
    uuidlib.UUID(spec.uuid)
    if (spec.initrd or spec.cmdline) and not spec.kernel:
        raise ValueError("initrd/cmdline need a kernel (direct kernel boot)")
    if spec.arch not in MACHINES:
        raise ValueError(f"arch must be one of {', '.join(MACHINES)}, not {spec.arch!r}")
    boot = boot_mode(spec)
    if boot not in BOOT_MODES:
        raise ValueError(f"boot must be one of {', '.join(BOOT_MODES)}, not {spec.boot!r}")
    if boot == "kernel" and not spec.kernel:
        raise ValueError("boot 'kernel' needs a kernel path (direct kernel boot)")
    if boot != "kernel" and spec.kernel:
        raise ValueError(f"boot {boot!r} boots the disk's own bootloader; kernel/initrd/cmdline are for 'kernel'")
    if spec.arch == "aarch64" and boot == "bios":
        raise ValueError("aarch64 guests boot through UEFI or a direct kernel, not BIOS")
    if spec.secure_boot and boot != "uefi":
        raise ValueError("secure_boot needs boot 'uefi'")
    for nic in spec.nics:
        if not _MAC.match(nic.mac):
            raise ValueError(f"bad MAC {nic.mac!r} (lower-case xx:xx:xx:xx:xx:xx)")
        uuidlib.UUID(nic.interfaceid)  # libvirt refuses anything but a UUID


def boot_mode(spec: DomainSpec) -> str:
    """The spec's boot mode: ``spec.boot``, else 'kernel' with a kernel path and 'bios' without."""
    return spec.boot or ("kernel" if spec.kernel else "bios")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs) -> ET.Element:
    el = ET.SubElement(parent, tag, {k.rstrip("_"): str(v) for k, v in attrs.items()})
    if text is not None:
        el.text = str(text)
    return el


def _meta_element(meta: InstanceMeta, ns: str = NS) -> ET.Element:
    q = f"{{{ns}}}" if ns else ""
    inst = ET.Element(f"{q}instance")
    _sub(inst, f"{q}tenant", meta.tenant)
    _sub(inst, f"{q}template", meta.template)
    _sub(inst, f"{q}seed", meta.seed)
    nets = _sub(inst, f"{q}networks")
    for n in meta.networks:
        _sub(nets, f"{q}network", n)
    return inst


def metadata_xml(meta: InstanceMeta) -> str:
    """``<instance><tenant>…</instance>`` as text: the element WITHOUT a namespace, as
    ``dom.setMetadata(VIR_DOMAIN_METADATA_ELEMENT, xml, PREFIX, NS)`` wants it — libvirt puts it in
    ``NS`` itself and refuses an element that declares it ("failed to create a new XML namespace")."""
    return ET.tostring(_meta_element(meta, ns=""), encoding="unicode")


def parse_metadata(xml_text: str) -> InstanceMeta | None:
    """The InstanceMeta in a domain XML or a bare instance element; None when absent.

    Accepts the element as ``dom.metadata(VIR_DOMAIN_METADATA_ELEMENT, NS)`` returns it: libvirt
    strips the namespace there (``<instance><tenant>…``), while ``XMLDesc`` keeps it.
    """
    root = ET.fromstring(xml_text)
    if root.tag == "instance":  # namespace stripped by libvirt
        q = ""
        inst = root
    else:
        q = f"{{{NS}}}"
        inst = root if root.tag == f"{q}instance" else root.find(f"./metadata/{q}instance")
    if inst is None:
        return None

    def text(tag):
        el = inst.find(f"{q}{tag}")
        return (el.text or "") if el is not None else ""
    nets = tuple((n.text or "") for n in inst.findall(f"{q}networks/{q}network"))
    return InstanceMeta(text("tenant"), text("template"), text("seed"), nets)


def domain_xml(spec: DomainSpec) -> str:
    """The domain XML for ``spec``; raises ValueError for an invalid spec (names the field)."""
    _validate(spec)
    dom = ET.Element("domain", type=spec.domain_type)
    _sub(dom, "name", spec.name)
    _sub(dom, "uuid", spec.uuid)
    if spec.metadata is not None:
        _sub(dom, "metadata").append(_meta_element(spec.metadata))
    _sub(dom, "memory", spec.max_memory_mib or spec.memory_mib, unit="MiB")
    _sub(dom, "currentMemory", spec.memory_mib, unit="MiB")
    if spec.max_vcpus and spec.max_vcpus > spec.vcpus and spec.arch != "aarch64":  # QEMU's virt: no vCPU hot-plug
        _sub(dom, "vcpu", spec.max_vcpus, placement="static", current=spec.vcpus)
    else:
        _sub(dom, "vcpu", spec.vcpus, placement="static")
    boot = boot_mode(spec)
    arm = spec.arch == "aarch64"
    os_ = _sub(dom, "os", firmware="efi") if boot == "uefi" else _sub(dom, "os")
    _sub(os_, "type", "hvm", arch=spec.arch, machine=spec.machine or MACHINES[spec.arch])
    if boot == "uefi":
        fw = _sub(os_, "firmware")
        _sub(fw, "feature", enabled="yes" if spec.secure_boot else "no", name="enrolled-keys")
        _sub(fw, "feature", enabled="yes" if spec.secure_boot else "no", name="secure-boot")
    if boot == "kernel":
        _sub(os_, "kernel", spec.kernel)
        if spec.initrd:
            _sub(os_, "initrd", spec.initrd)
        if spec.cmdline:
            _sub(os_, "cmdline", spec.cmdline)
    else:
        _sub(os_, "boot", dev="hd")
    feats = _sub(dom, "features")
    _sub(feats, "acpi")
    if not arm:
        _sub(feats, "apic")
    if spec.secure_boot:
        _sub(feats, "smm", state="on")
    if spec.domain_type == "kvm":
        _sub(dom, "cpu", mode="host-passthrough", check="none", migratable="on")
    elif arm:
        cpu = _sub(dom, "cpu", mode="custom", match="exact", check="none")
        _sub(cpu, "model", "cortex-a57", fallback="forbid")
    _sub(dom, "clock", offset="utc")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")
    dev = _sub(dom, "devices")
    disk = _sub(dev, "disk", type="file", device="disk")
    _sub(disk, "driver", name="qemu", type=spec.disk_format, discard="unmap")
    _sub(disk, "source", file=spec.disk_path)
    _sub(disk, "target", dev="vda", bus="virtio")
    if spec.seed_path:
        cd = _sub(dev, "disk", type="file", device="cdrom")
        _sub(cd, "driver", name="qemu", type="raw")
        _sub(cd, "source", file=spec.seed_path)
        # aarch64 has no IDE. A Debian 11 UEFI guest on a loaded lab (load ~15 on 2 cores) once
        # found no device behind the IDE port (no sr0: cloud-init fell back to DataSourceNone);
        # alone under OVMF it attached. virtio-scsi has no legacy ATA probe timing to miss.
        scsi = arm or boot == "uefi"
        if scsi:
            _sub(cd, "target", dev="sda", bus="scsi")
        else:
            _sub(cd, "target", dev="hdc", bus="ide")
        _sub(cd, "readonly")
        if scsi:
            _sub(dev, "controller", type="scsi", index=0, model="virtio-scsi")
    for nic in spec.nics:
        iface = _sub(dev, "interface", type="bridge")
        _sub(iface, "mac", address=nic.mac)
        _sub(iface, "source", bridge=nic.bridge)
        vp = _sub(iface, "virtualport", type="openvswitch")
        _sub(vp, "parameters", interfaceid=nic.interfaceid)
        _sub(iface, "model", type="virtio")
        drv = _sub(iface, "driver", name="qemu")
        _sub(drv, "host", **HOST_OFFLOADS_OFF)
        if nic.mtu:
            _sub(iface, "mtu", size=nic.mtu)
    serial = _sub(dev, "serial", type="pty")
    if spec.serial_log:
        _sub(serial, "log", file=spec.serial_log, append="off")
    if arm:
        _sub(_sub(serial, "target", type="system-serial", port=0), "model", name="pl011")
    else:
        _sub(serial, "target", port=0)
    con = _sub(dev, "console", type="pty")
    _sub(con, "target", type="serial", port=0)
    _sub(dev, "memballoon", model="virtio")  # live RAM changes up to <memory>
    rng = _sub(dev, "rng", model="virtio")  # entropy early in boot (sshd keys, cloud-init)
    _sub(rng, "backend", "/dev/urandom", model="random")
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode")
