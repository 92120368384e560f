"""Helpers for the live-model tests on the lab (tests/test_console_live.py,
tests/test_console_lab_ui.py)."""

from __future__ import annotations

import uuid

from virtdeck.backends import domain_xml as dx


def tiny_domain(name: str) -> str:
    """Domain XML for a 1-vCPU, 32 MiB qemu domain of tenant ``livetest`` (disk path under /tmp,
    never created): cheap to define and undefine from outside to watch the live model follow."""
    return dx.domain_xml(dx.DomainSpec(
        name=name, uuid=str(uuid.uuid4()), vcpus=1, memory_mib=32, domain_type="qemu",
        disk_path=f"/tmp/{name}.qcow2",
        metadata=dx.InstanceMeta(tenant="livetest")))
