"""A busy lab guest for the metrics tests, without a cloud-init boot.

:func:`start_busy` starts a transient TCG domain on a lab host from the debian12 template's
kernel, initrd and image (attached read-only: nothing to create or clean up on disk) whose
init is ``md5sum /dev/zero`` (the kernel hands the arguments after ``--`` to initramfs-tools'
init, which passes them on): it spins one vCPU at 100 % about 6 s after start, forever, until
:func:`stop_busy` destroys it (a transient domain leaves nothing behind).
"""

from __future__ import annotations

import libvirt

BUSY_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>192</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>root=/dev/vda ro console=ttyS0 quiet init={init} -- {args}</cmdline>
  </os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='{image}'/>
      <target dev='vda' bus='virtio'/>
      <readonly/>
    </disk>
    <serial type='pty'/>
  </devices>
</domain>"""


def _path(conn: libvirt.virConnect, pool: str, vol: str) -> str:
    return conn.storagePoolLookupByName(pool).storageVolLookupByName(vol).path()


def start_busy(conn: libvirt.virConnect, name: str, *, busy: bool = True,
               pool: str = "virtdeck", template: str = "debian12") -> libvirt.virDomain:
    """Start transient domain ``name`` (see module doc); ``busy=False`` runs ``sleep`` instead
    of the spin (an idle guest of the same shape). Returns the domain."""
    init, args = ("/usr/bin/md5sum", "/dev/zero") if busy else ("/usr/bin/sleep", "100000")
    xml = BUSY_XML.format(name=name, kernel=_path(conn, pool, f"{template}.vmlinuz"),
                          initrd=_path(conn, pool, f"{template}.initrd"),
                          image=_path(conn, pool, f"{template}.qcow2"), init=init, args=args)
    return conn.createXML(xml, 0)


def stop_busy(conn: libvirt.virConnect, name: str) -> None:
    """Destroy the transient domain ``name``; nothing when it is not there."""
    try:
        conn.lookupByName(name).destroy()
    except libvirt.libvirtError:
        pass


def running_xml(name: str) -> str:
    """A tiny transient domain that runs without booting anything: TCG, 32 MiB, one vCPU, no
    disk (SeaBIOS waits for a boot device, idle). Start it with ``createXML``; ``destroy``
    leaves nothing behind. tests/bench/bench_metrics.py starts ~10 per host."""
    import uuid
    return f"""<domain type='qemu'>
  <name>{name}</name><uuid>{uuid.uuid4()}</uuid>
  <memory unit='MiB'>32</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>
</domain>"""
