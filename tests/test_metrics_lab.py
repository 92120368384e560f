"""Metrics on the lab: a guest made busy shows as a rising sparkline on its row and on its host
in the console within two intervals (Pilot, reading the table rows the widget draws), and a
create placed while that host is busy goes to the other host, the reason naming the figures.

The busy guest (tests/metrics_helpers.py) is a transient TCG domain on the first hypervisor
whose init is ``md5sum /dev/zero``: no cloud-init, one vCPU spinning ~6 s after start; it is
started once for this module (one guest boot per host: the create boots the only other one).
The lab's hypervisors share one kernel, so their node CPU figures are the machine's: these
tests use ``metrics.cpu_source = "guests"`` (the guests' CPU time over the host's CPUs), which
is what the inventory says to do for such hosts. Figures are printed with the prefix METRICS.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace

import pytest

from virtdeck.backends.session import Session
from virtdeck.console.app import VirtdeckApp
from virtdeck.console.live import LiveModel
from virtdeck.console.metrics import SPARK
from virtdeck.console.services import placement
from virtdeck.screens import metrics_widgets as mw
from guests import boot, keypair, remove
from metrics_helpers import start_busy, stop_busy
from provision_helpers import lab_inventory, lab_session, roomy  # noqa: F401

pytestmark = [pytest.mark.lab, pytest.mark.slow]

INTERVAL = 2.0          # s between polls in these tests (the default is 3 s)
THRESHOLD = 12.0        # % guest CPU of the host's CPUs above which placement refuses a host


def metrics_inventory(inv, **kw):
    """``inv`` with the guests' CPU as the host figure, a short interval and generous ratios
    (other engineers' shut-off domains on the shared lab must not fill the hosts)."""
    return replace(roomy(inv), metrics=replace(inv.metrics, interval=INTERVAL, cpu_source="guests",
                                               cpu_threshold=THRESHOLD, sample=2.0, **kw))


class Busy:
    """The module's busy guest on ``host``: :meth:`start` once, destroyed at the end."""

    def __init__(self, session: Session, host: str):
        self.session, self.host = session, host
        self.name = "metrics-busy-" + uuid.uuid4().hex[:6]
        self.started_at: float | None = None

    def start(self) -> float:
        if self.started_at is None:
            start_busy(self.session.libvirt(self.host), self.name)
            self.started_at = time.monotonic()
        return self.started_at


@pytest.fixture(scope="module")
def busy(lab_session, lab_inventory):
    hosts = [h.name for h in lab_inventory.hypervisors if h.enabled]
    if len(hosts) < 2:
        pytest.skip("needs two hypervisors")
    b = Busy(lab_session, hosts[0])
    yield b
    stop_busy(lab_session.libvirt(b.host), b.name)


def col(table, key: str) -> int:
    return [c.key for c in table.columns].index(key)


async def test_busy_guest_rises_on_its_row_and_its_host_within_two_intervals(lab_inventory, busy):
    inv = metrics_inventory(lab_inventory)
    live = LiveModel(inv).start()
    app = VirtdeckApp(live, inventory=inv)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await asyncio.to_thread(live.wait_ready, 30)
            hosts = app.screen.table("hosts")

            def host_row():
                return next(r.cells for r in hosts.rows if r.cells[0] == busy.host)

            def host_cpu() -> float | None:
                view = app.cloud.metrics
                return view.host_cpu(view.hosts.get(busy.host))[0] if view else None
            # the host's sparkline before the guest starts (other engineers' guests may run
            # there too: rising means above every point drawn before)
            t_wait = time.monotonic()
            while time.monotonic() - t_wait < 6 * INTERVAL:
                hist = app.cloud.metrics.host_cpu(app.cloud.metrics.hosts.get(busy.host))[1] \
                    if app.cloud.metrics and app.cloud.metrics.hosts.get(busy.host) else ()
                if len([v for v in hist if v is not None]) >= 2:
                    break
                await asyncio.sleep(0.1)
            before = [v for v in hist if v is not None]
            baseline = sum(before) / len(before) if before else 0.0
            spark_before = host_row()[col(hosts, "cpu_spark")]

            t0 = await asyncio.to_thread(busy.start)
            await pilot.press("2")
            vms = app.screen.table("vms")

            def vm_cells():
                return next((r.cells for r in vms.rows if r.cells[0] == busy.name), None)

            level = SPARK.index
            before_level = max((level(c) for c in spark_before if c != " "), default=0)

            def host_spark() -> str:
                # the cell the Hosts panel draws (built by the same function while hidden)
                h = app.cloud.host(busy.host)
                return mw.host_cells(app.cloud, h)[1] if h else ""

            def shows_busy() -> bool:
                """Rising, as drawn: the VM's newest sparkline point above idle (> 12.5 % of its
                vCPU) and the host's newest point above every point before the guest started."""
                cells = vm_cells()
                spark = cells[col(vms, "cpu_spark")] if cells else ""
                hs = host_spark()
                return (spark[-1:] not in ("", " ") and level(spark[-1]) >= 2
                        and hs[-1:] not in ("", " ") and level(hs[-1]) > before_level)
            deadline = t0 + 6 * INTERVAL + 10
            while not shows_busy() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            took = time.monotonic() - t0
            cells = vm_cells()
            await pilot.press("1")          # a panel's rows are rebuilt while it is shown
            await pilot.pause(0.2)
            row = host_row()
            print(f"METRICS busy guest visible on its row and host after {took:.1f} s "
                  f"(interval {INTERVAL:g} s); VM spark {cells and cells[col(vms, 'cpu_spark')]!r}, "
                  f"host {busy.host} guest CPU {baseline:.0f} % -> {host_cpu()} %, "
                  f"spark {spark_before!r} -> {row[col(hosts, 'cpu_spark')]!r}")
            assert shows_busy(), f"not shown after {took:.1f} s: VM row {cells}, host row {row}"
            newest = row[col(hosts, "cpu_spark")][-1]           # the Hosts panel's own row
            assert level(newest) > before_level, \
                f"host sparkline did not rise: {spark_before!r} -> {row[col(hosts, 'cpu_spark')]!r}"
            # two intervals: the first figure needs two samples after the guest runs; the
            # polls' own time and the publish are the slack
            assert took <= 2 * INTERVAL + 2.5, f"took {took:.1f} s for interval {INTERVAL:g} s"
    finally:
        live.stop()


def test_create_avoids_the_busy_host_and_names_the_figures(lab_inventory, lab_session, busy, tmp_path):
    from virtdeck.backends.ovn import networks as ovn_networks
    inv = metrics_inventory(lab_inventory)
    busy.start()
    tenant = f"tmet{uuid.uuid4().hex[:5]}"
    name = "metrics-place-" + uuid.uuid4().hex[:5]
    nb = lab_session.nb()
    ovn_networks.create_network(nb, ovn_networks.NetworkSpec(
        tenant=tenant, name="net1", kind="overlay", cidr="10.67.0.0/24", gateway="10.67.0.1"))
    key = keypair(tmp_path, "id")
    with Session(inv) as s:
        try:
            # the guest is spinning before the create reads the hosts
            t0 = time.monotonic()
            while time.monotonic() - t0 < 60:
                load = placement.measured_load(s.libvirt(busy.host), busy.host, inv.metrics)
                if load.cpu_pct is not None and load.cpu_pct > THRESHOLD:
                    break
            print(f"METRICS {busy.host} guest CPU {load.cpu_pct} % ({load.origin} over {load.span_s:g} s) "
                  f"{time.monotonic() - busy.started_at:.1f} s after the busy guest started")
            res = boot(s, inv, tenant=tenant, name=name, networks=("net1",), key=key, ram_mib=384)
            explain = res.placement.explain()
            print("METRICS placement:\n" + explain)
            assert res.host != busy.host
            why = res.placement.verdict(busy.host).summary
            assert res.placement.verdict(busy.host).refused
            assert f"pressure: guest CPU " in why and f"> {THRESHOLD:g} % threshold" in why, why
            assert "measured guest CPU" in res.placement.verdict(res.host).summary
        finally:
            remove(s, inv, tenant, name)
            ovn_networks.delete_network(nb, tenant, "net1", cascade=True)
