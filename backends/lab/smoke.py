"""Boot one guest from the lab template with a NoCloud seed and prove cloud-init ran.

:func:`boot_probe` ``(host="hv1", ...) -> ProbeResult`` is the lab's end-to-end check (used by
tests/lab/test_guest.py and tests/bench/bench_lab.py). Through the hypervisor's libvirtd it
creates a qcow2 overlay on the template and uploads a seed ISO (backends/seed.py) into the
`virtdeck` pool, defines a TCG domain (backends/domain_xml.py) with direct kernel boot and a
serial log, starts it, then waits on the serial log (no sleeps) for the marker printed by a
``runcmd`` of the seed and for cloud-init's ``final_message``. Everything it created is removed
afterwards (domain and both volumes), also on failure.

Timings in seconds from ``dom.create()``: ``kernel_s`` (first "Linux version" line),
``marker_s`` (runcmd marker), ``done_s`` (final_message, i.e. cloud-init finished).
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from dataclasses import dataclass

from ..domain_xml import DomainSpec, InstanceMeta, domain_xml
from . import hosts as H
from . import topology as topo
from .state import LabError
from ..seed import build_nocloud_iso


@dataclass(frozen=True)
class ProbeResult:
    name: str
    host: str
    hostname_seen: bool
    marker_seen: bool
    kernel_s: float | None
    marker_s: float | None
    done_s: float | None
    serial: str  # everything the guest printed on its serial console

    @property
    def serial_tail(self) -> str:
        return self.serial[-3000:]


def _create_volume(conn, pool, xml: str, data: bytes | None = None):
    import libvirt
    vol = pool.createXML(xml, 0)
    if data is not None:
        st = conn.newStream(0)
        vol.upload(st, 0, len(data), 0)
        view = memoryview(data)
        off = 0
        while off < len(data):
            n = st.send(bytes(view[off:off + 1 << 20]))
            off += n
        st.finish()
    return vol


def boot_probe(host: str = "hv1", memory_mib: int = 512, vcpus: int = 1, timeout: float = 420,
               name: str | None = None, keep: bool = False,
               extra_runcmd: tuple[str, ...] = ()) -> ProbeResult:
    """Boot, watch, clean up (see module doc). Raises LabError when the lab host is down.

    ``extra_runcmd``: shell commands run after the marker, their output sent to the serial
    console (e.g. ``"cloud-init analyze blame"`` to see where boot time goes).
    """
    import libvirt
    libvirt.registerErrorHandler(lambda *_: None, None)
    h = topo.by_name(host)
    pid = H.holder_pid(h)
    name = name or f"probe-{secrets.token_hex(3)}"
    marker = f"VIRTDECK-MARK-{secrets.token_hex(4)}"
    hostname = name
    meta = f"instance-id: {uuid.uuid4()}\nlocal-hostname: {hostname}\n"
    user = (
        "#cloud-config\n"
        f"hostname: {hostname}\n"
        "runcmd:\n"
        f"  - [sh, -c, 'echo {marker} host=$(hostname) > /dev/ttyS0']\n"
        + "".join(f"  - [sh, -c, {json.dumps(c + ' > /dev/ttyS0 2>&1')}]\n" for c in extra_runcmd) +
        f"final_message: 'VIRTDECK-DONE {marker} after $UPTIME s'\n"
    )
    mac = "52:54:00:%02x:%02x:%02x" % tuple(secrets.token_bytes(3))
    netcfg = ("version: 2\nethernets:\n  nic0:\n    match:\n      macaddress: '%s'\n"
              "    dhcp4: false\n" % mac)
    iso = build_nocloud_iso(meta, user, netcfg)
    conn = libvirt.open(H.libvirt_uri(h, pid))
    dom = disk = seed = None
    serial = f"/var/log/libvirt/qemu/{name}-serial.log"
    serial_path = H.host_path(h, serial, pid)
    text = ""
    t_kernel = t_marker = t_done = None
    try:
        pool = conn.storagePoolLookupByName(topo.POOL_NAME)
        tpl = pool.storageVolLookupByName("debian12.qcow2")
        disk = _create_volume(conn, pool, f"""<volume><name>{name}.qcow2</name>
<capacity unit='GiB'>4</capacity><target><format type='qcow2'/></target>
<backingStore><path>{tpl.path()}</path><format type='qcow2'/></backingStore></volume>""")
        seed = _create_volume(conn, pool, f"""<volume><name>{name}-seed.iso</name>
<capacity unit='bytes'>{len(iso)}</capacity><target><format type='raw'/></target></volume>""", iso)
        spec = DomainSpec(
            name=name, uuid=str(uuid.uuid4()), vcpus=vcpus, memory_mib=memory_mib,
            disk_path=disk.path(), seed_path=seed.path(), domain_type="qemu",
            kernel=pool.storageVolLookupByName("debian12.vmlinuz").path(),
            initrd=pool.storageVolLookupByName("debian12.initrd").path(),
            cmdline="root=/dev/vda ro console=ttyS0", serial_log=serial,
            metadata=InstanceMeta(tenant="lab", template="debian12", seed=f"{name}-seed.iso"))
        dom = conn.defineXML(domain_xml(spec))
        t0 = time.monotonic()
        dom.create()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            try:
                text = serial_path.read_text(errors="replace")
            except OSError:
                text = ""
            now = time.monotonic() - t0
            if t_kernel is None and "Linux version" in text:
                t_kernel = now
            if t_marker is None and marker in text:
                t_marker = now
            if t_done is None and f"VIRTDECK-DONE {marker}" in text:
                t_done = now
                break
            if not dom.isActive():
                break
            time.sleep(0.2)  # polling a file; the guest needs tens of seconds
        return ProbeResult(name, host, f"host={hostname}" in text, marker in text,
                           t_kernel, t_marker, t_done, text)
    except libvirt.libvirtError as exc:
        raise LabError(f"{host}: guest probe: {exc}") from None
    finally:
        if not keep:
            for step in (lambda: dom.destroy(), lambda: dom.undefine(),
                         lambda: disk.delete(0), lambda: seed.delete(0)):
                try:
                    step()
                except Exception:
                    pass
            try:
                serial_path.unlink()
            except OSError:
                pass
        conn.close()


if __name__ == "__main__":  # python -m virtdeck.backends.lab.smoke [hv1 [extra runcmd …]]
    import os
    import sys
    r = boot_probe(sys.argv[1] if len(sys.argv) > 1 else "hv1", extra_runcmd=tuple(sys.argv[2:]))
    print(r.serial[-int(os.environ.get("TAIL", "1500")):])
    print(f"hostname_seen={r.hostname_seen} marker_seen={r.marker_seen} kernel={r.kernel_s} "
          f"marker={r.marker_s} done={r.done_s}")
