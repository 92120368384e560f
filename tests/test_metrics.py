"""Metrics: ring buffers and rates (pure: counters in, figures out), the pressure filter and the
measured-load weigher, the inventory's [metrics] keys. The lab tests are in test_metrics_lab.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from virtdeck.backends.metrics import DomainCounters, HostSample, NodeCounters, PoolCounters
from virtdeck.backends.scheduler import HostFacts, PlacementRequest, place
from virtdeck.config.inventory import parse
from virtdeck.console.errors import ConfigError
from virtdeck.console.metrics import MetricsStore, Ring


def _sample(at, busy, total, cpu_ns, rx=0, pools=None, vm_cpu_ns=None, cpus=2):
    dom = DomainCounters("u1", "web", "running", vcpus=1,
                         cpu_time_ns=cpu_ns if vm_cpu_ns is None else vm_cpu_ns,
                         rss_mib=100, rx_bytes=rx, tx_bytes=0, rd_bytes=0, wr_bytes=0)
    node = NodeCounters(cpus, busy, total, 4096, 1024, 1024, pools)
    return HostSample("hv1", at, node, (dom,))


def test_rates_from_two_samples():
    s = MetricsStore(interval=2, window=20)
    s.add(_sample(100.0, 0, 0, 0, pools=(PoolCounters("p", 10 << 30, 4 << 30, 6 << 30),)))
    first = s.host("hv1")
    assert first.cpu_pct is None and first.guest_cpu_pct is None     # one sample: no delta yet
    s.add(_sample(102.0, 3_000_000_000, 4_000_000_000, 1_000_000_000, rx=2000))
    h, v = s.host("hv1"), s.vm("u1")
    assert h.cpu_pct == pytest.approx(75.0)                  # 3 of 4 s of CPU time busy
    assert h.guest_cpu_pct == pytest.approx(25.0)            # 1 s of guest CPU / 2 s / 2 CPUs
    assert h.mem_used_mib == 2048 and h.mem_used_pct == pytest.approx(50.0)
    assert h.pool_free_gib == pytest.approx(6.0)             # kept between pool reads
    assert v.cpu_pct == pytest.approx(50.0) and v.rx_bps == pytest.approx(1000.0)
    assert v.cpu_history == (None, pytest.approx(50.0))


def test_ring_is_bounded_and_mean_skips_gaps():
    r = Ring(3)
    for t, v in ((0, 10.0), (1, None), (2, 30.0), (3, 50.0)):
        r.add(t, v)
    assert r.values() == [None, 30.0, 50.0]
    assert r.mean(10) == (40.0, 1)


def test_no_figure_is_a_gap_and_counter_reset_gives_none():
    s = MetricsStore(interval=1, window=10)
    s.add(_sample(0.0, 0, 0, 5_000_000_000))
    s.no_figure("hv1", 1.0)
    assert s.host("hv1").cpu_pct is None
    s.add(_sample(2.0, 1, 2, 1_000))            # the domain restarted: its counter went back
    assert s.vm("u1").cpu_pct is None
    assert s.host("hv1").cpu_history[-2:] == (None, 50.0)


def test_window_and_interval_size_the_rings():
    s = MetricsStore(interval=3, window=600)
    assert s.size == 201
    with pytest.raises(ValueError):
        MetricsStore(interval=0)


def _hf(name, load=None, ram=None, source="node", span=300.0, **kw):
    return HostFacts(name, cores=4, ram_total_mib=8192, ram_free_mib=8000, cpu_load_pct=load,
                     cpu_load_span_s=span, cpu_load_source=source, ram_used_pct=ram, **kw)


def test_pressure_filter_names_the_figures():
    p = place([_hf("hv1", 82.0), _hf("hv2", 10.0)], PlacementRequest(1, 512), cpu_threshold=75)
    assert p.host == "hv2"
    assert p.verdict("hv1").refused
    assert "pressure: CPU 82 % over 5 min > 75 % threshold" in p.verdict("hv1").summary
    assert "measured CPU 10 % over 5 min" in p.verdict("hv2").summary


def test_threshold_from_the_facts_and_ram_pressure():
    p = place([_hf("hv1", 5.0, ram=97.0, ram_threshold=95.0), _hf("hv2", 20.0, ram=10.0)],
              PlacementRequest(1, 512))
    assert p.host == "hv2"
    assert "pressure: RAM 97 % in use > 95 % threshold" in p.verdict("hv1").summary


def test_weigher_prefers_the_idle_host_at_equal_allocation():
    p = place([_hf("hv1", 60.0, source="guests", span=40), _hf("hv2", 5.0, source="guests", span=40)],
              PlacementRequest(1, 512))
    assert p.host == "hv2" and not p.verdict("hv1").refused
    assert "guest CPU 60 % over 40 s" in p.verdict("hv1").summary
    # pack still packs: the busier host when allocations are equal
    assert place([_hf("hv1", 60.0), _hf("hv2", 5.0)], PlacementRequest(1, 512), weigher="pack").host == "hv1"


def test_no_figure_is_no_refusal():
    p = place([_hf("hv1", None), _hf("hv2", None)], PlacementRequest(1, 512), cpu_threshold=1)
    assert p.host == "hv1" and not any(v.refused for v in p.verdicts)


def test_inventory_metrics_keys(tmp_path: Path):
    inv = parse({"metrics": {"interval": 5, "window": 300, "cpu_threshold": 75, "cpu_source": "guests"}},
                tmp_path / "inv.toml")
    assert inv.metrics.interval == 5.0 and inv.metrics.cpu_source == "guests"
    for bad, word in (({"interval": 0}, "metrics.interval"), ({"window": 1}, "metrics.window"),
                      ({"cpu_threshold": 150}, "metrics.cpu_threshold"),
                      ({"cpu_source": "x"}, "metrics.cpu_source"), ({"speed": 1}, "metrics.speed")):
        with pytest.raises(ConfigError, match=word.replace(".", r"\.")):
            parse({"metrics": bad}, tmp_path / "inv.toml")


def test_no_threshold_no_sample_in_the_cli():
    """Without thresholds and without the console's history a CLI create reads no figures
    (and so does not wait for a sample): placement stays allocation-only."""
    from virtdeck.config.inventory import MetricsConfig
    from virtdeck.console import metrics as store_mod
    from virtdeck.console.services.placement import measured_load
    assert store_mod.STORE is None
    load = measured_load(None, "hv1", MetricsConfig())      # None: no connection is touched
    assert (load.cpu_pct, load.ram_pct, load.origin) == (None, None, "none")


def test_figures_alone_publish_at_most_twice_per_interval():
    from virtdeck.config.inventory import Inventory
    from virtdeck.console.live import LiveModel
    live = LiveModel(Inventory(), stats_interval=30.0)
    live._dirty.clear()
    live._metrics_changed()
    assert live._dirty.is_set()          # the first figures go out at once
    live._dirty.clear()
    live._metrics_changed()              # another host's poll within the interval: held back
    assert not live._dirty.is_set()
    live._metrics_published -= 30.0
    live._metrics_changed()
    assert live._dirty.is_set()
    live.session.close()


def test_view_keeps_objects_while_the_drawing_does_not_change():
    """A steady VM (same sparkline cell, CPU %, rates as drawn) keeps its figures object and the
    view keeps its ``vms`` dict: the VMs panel is not refilled; a change gives new ones."""
    s = MetricsStore(interval=1, window=60)
    for i in range(12):                               # 1 % CPU, steady: the cell fills up
        s.add(_sample(float(i), i, 2 * i, i * 10_000_000))
        v1 = s.view()
    s.add(_sample(12.0, 12, 24, 12 * 10_000_000))
    v2 = s.view()
    assert v2 is not v1 and v2.vms is v1.vms and v2.vms["u1"] is v1.vms["u1"]
    s.add(_sample(13.0, 13, 26, 12 * 10_000_000 + 900_000_000))   # 90 % now
    v3 = s.view()
    assert v3.vms is not v2.vms and v3.vms["u1"].cpu_pct == pytest.approx(90.0)
