"""Run inside a sandbox by tests/lab/test_sandbox_cleanup.py (not collected: no test_ prefix):
bring a 1-hypervisor lab up, start one tiny running guest on hv1, write READY_FILE, then wait
to be ended from outside.

    python tests/lab/sandbox_inner.py READY_FILE [EXIT_FILE]

With EXIT_FILE it exits (status 0, lab and guest left running) once that file exists: a
command that ends by itself without taking its lab down.

The guest is TCG qemu with 32 MiB, no disk and no kernel: SeaBIOS finds nothing to boot and
waits, so it idles cheaply; it is a real libvirt domain and a real qemu process all the same.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

TINY_XML = f"""<domain type='qemu'><name>tiny</name><uuid>{uuid.uuid4()}</uuid>
<memory unit='MiB'>32</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os>
<devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices></domain>"""


def main() -> None:
    import libvirt

    from virtdeck.backends.lab.hosts import libvirt_uri
    from virtdeck.backends.lab.up import up
    t0 = time.monotonic()
    up(1, log=lambda m: None)
    t_up = time.monotonic() - t0
    conn = libvirt.open(libvirt_uri("hv1"))
    dom = conn.createXML(TINY_XML, 0)
    assert dom.isActive()
    Path(sys.argv[1]).write_text(f"up_s={t_up:.2f} guest_s={time.monotonic() - t0 - t_up:.2f}\n")
    exit_file = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    while not (exit_file and exit_file.exists()):
        time.sleep(0.05 if exit_file else 3600)


if __name__ == "__main__":
    main()
