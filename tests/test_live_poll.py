"""The live model's poll cadence (console/live_host.py): a host with no active domain backs off
(nothing a guest reports can change), the first running domain brings the stats interval back.
The lab test runs against real libvirtd hosts (a sandbox lab or CI's lab)."""

from __future__ import annotations

import time
import uuid
from types import SimpleNamespace

import pytest

from virtdeck.console.live import LiveModel
from virtdeck.console.live_host import IDLE_POLL_MAX, HostWorker
from virtdeck.console.model import Vm
from fixtures_real import wait_for
from live_helpers import isolated_user_known_hosts, tiny_domain  # noqa: F401 (autouse fixture)


def worker_with(vms: list[Vm], interval: float = 3.0) -> HostWorker:
    w = HostWorker.__new__(HostWorker)           # only what _poll_delay reads
    w.live = SimpleNamespace(stats_interval=interval)
    w.vms = {v.uuid: v for v in vms}
    return w


def test_poll_delay_backs_off_only_while_nothing_runs():
    off = [Vm(host="h", name=f"d{i}", uuid=f"u{i}", state="shutoff") for i in range(3)]
    w = worker_with(off)
    delays, d = [], 1.5
    for _ in range(7):
        d = w._poll_delay(d)
        delays.append(d)
    assert delays == [3.0, 6.0, 12.0, 24.0, IDLE_POLL_MAX, IDLE_POLL_MAX, IDLE_POLL_MAX]
    w.vms["u9"] = Vm(host="h", name="run", uuid="u9", state="running")
    assert w._poll_delay(IDLE_POLL_MAX) == 3.0        # the metrics interval again
    assert worker_with([], interval=60.0)._poll_delay(60.0) == 60.0   # never below the interval


@pytest.mark.lab
def test_lab_idle_host_polls_less_then_a_started_domain_brings_the_interval_back(lab_inv):
    live = LiveModel(lab_inv, stats_interval=0.5).start()
    name = "sppoll-" + uuid.uuid4().hex[:6]
    made: list[str] = []          # the host the domain went to
    try:
        assert live.wait_ready(30)
        cloud = live.snapshot()
        idle = [h.name for h in cloud.hosts if h.up
                and not any(v.active for v in cloud.vms if v.host == h.name)]
        if not idle:
            pytest.skip("every lab host runs a domain (shared lab in use)")
        host = idle[0]
        w = live._workers[host]
        p0 = w.polls
        time.sleep(4.0)
        # 0.5 s every poll would be 8 polls; backed off (0.5, 1, 2, 4 s) at most 4
        assert w.polls - p0 <= 4
        s = live.session
        made.append(host)
        assert s.run(host, f"qemu-img create -q -f qcow2 /tmp/{name}.qcow2 16M && "
                     f"cat > /tmp/{name}.xml <<'EOF'\n{tiny_domain(name)}\nEOF\n"
                     f"virsh -q define /tmp/{name}.xml && virsh -q start {name}").ok
        wait_for(lambda: any(v.name == name and v.state == "running"
                             for v in live.snapshot().vms), 5.0, "running domain")
        p1 = w.polls
        time.sleep(2.0)
        assert w.polls - p1 >= 2               # back at the 0.5 s interval
        vm = next(v for v in live.snapshot().vms if v.name == name)
        assert vm.state == "running"
    finally:
        for h in made:
            live.session.run(h, f"virsh -q destroy {name} 2>/dev/null; virsh -q undefine "
                             f"{name} 2>/dev/null; rm -f /tmp/{name}.xml /tmp/{name}.qcow2")
        live.stop()
