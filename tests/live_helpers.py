"""Helpers for the live-model tests on the lab (tests/test_console_live.py,
tests/test_console_lab_ui.py, tests/test_reconnect.py)."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid

import pytest

from virtdeck.backends import domain_xml as dx, ssh_config


@pytest.fixture(autouse=True)
def isolated_user_known_hosts(tmp_path, monkeypatch):
    """Never read or write the real ~/.ssh/known_hosts from tests (autouse in every module that
    imports it)."""
    monkeypatch.setattr(ssh_config, "DEFAULT_USER_KNOWN_HOSTS", (tmp_path / "user_known_hosts",))


async def until(pilot, pred, timeout: float, what: str) -> float:
    """Let the app run until ``pred()``; returns the seconds it took. Fails after ``timeout``
    seconds with what the model and the screen showed (hosts up, VMs, the table's first column)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        await asyncio.sleep(0.02)
    app = pilot.app
    try:
        table = [r.cells[0] for r in app.screen.table().rows]
    except Exception:  # noqa: BLE001 - a screen without a table: say so
        table = "(no table)"
    raise AssertionError(f"screen did not show {what} within {timeout:g} s (hosts: "
                         f"{[(h.name, h.up, h.error) for h in app.cloud.hosts]}, model VMs: "
                         f"{[v.name for v in app.cloud.vms]}, table: {table})")


async def status_until(app, pred, timeout: float) -> str:
    """The console's status line once ``pred(text)`` holds, or as it is after ``timeout`` s."""
    end = time.monotonic() + timeout
    while True:
        text = str(app.screen.query_one("#status").render())
        if pred(text) or time.monotonic() > end:
            return text
        await asyncio.sleep(0.05)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, …) from one ``ps`` listing."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        p, pp = map(int, line.split())
        children.setdefault(pp, []).append(p)
    todo, found = [pid], []
    while todo:
        for c in children.get(todo.pop(), []):
            found.append(c)
            todo.append(c)
    return found


def tiny_domain(name: str) -> str:
    """Domain XML for a 1-vCPU, 32 MiB qemu domain of tenant ``livetest`` (disk path under /tmp,
    never created): cheap to define and undefine from outside to watch the live model follow."""
    return dx.domain_xml(dx.DomainSpec(
        name=name, uuid=str(uuid.uuid4()), vcpus=1, memory_mib=32, domain_type="qemu",
        disk_path=f"/tmp/{name}.qcow2",
        metadata=dx.InstanceMeta(tenant="livetest")))
