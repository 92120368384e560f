"""`virtdeck top --json` and `virtdeck metrics --listen` against the lab (the real CLI in a
subprocess, real hypervisors; no guest is booted), and their bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from virtdeck.console.errors import ValidationError
from virtdeck.console.services.metrics import parse_listen

VIRTDECK = [str(Path(sys.executable).parent / "virtdeck")]


def _cli(lab, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*VIRTDECK, "--config", str(lab.inventory), *argv],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.lab
def test_top_json_prints_one_line_per_screen_with_every_host(lab):
    t0 = time.monotonic()
    r = _cli(lab, "top", "-n", "2", "-d", "1", "--json")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        fig = json.loads(line)
        hosts = {h["host"]: h for h in fig["hosts"]}
        assert set(lab.hypervisors) <= set(hosts)
        for h in hosts.values():
            assert h["error"] is None
            assert 0 <= h["cpu_pct"] <= 100 and h["mem_total_mib"] > 0 and h["pool_free_gib"] > 0
        for v in fig["vms"]:
            assert {"vm", "host", "cpu_pct", "rss_mib", "rx_bps", "rd_bps"} <= set(v)
    print(f"METRICS top -n 2 -d 1 --json took {time.monotonic() - t0:.1f} s")
    text = _cli(lab, "top", "-d", "1")
    assert text.returncode == 0 and text.stdout.splitlines()[1].split()[:2] == ["HOST", "CPU%"]


@pytest.mark.lab
def test_metrics_listen_serves_prometheus_text_on_loopback(lab):
    p = subprocess.Popen([*VIRTDECK, "--config", str(lab.inventory), "metrics", "--listen",
                          "127.0.0.1:0", "-d", "1", "-n", "5"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        first = p.stdout.readline()
        assert "serving http://127.0.0.1:" in first, first + p.stderr.read()
        url = first.split("serving ", 1)[1].split(",", 1)[0]
        fams: dict = {}
        t0 = time.monotonic()
        while time.monotonic() - t0 < 20:
            body = urllib.request.urlopen(url, timeout=5).read().decode()
            fams = {f.name: f for f in text_string_to_metric_families(body)}
            if fams.get("virtdeck_host_cpu_percent") and fams["virtdeck_host_cpu_percent"].samples:
                break
            time.sleep(0.5)
        up = {s.labels["host"]: s.value for s in fams["virtdeck_host_up"].samples}
        assert all(up.get(h) == 1.0 for h in lab.hypervisors), up
        cpu = {s.labels["host"] for s in fams["virtdeck_host_cpu_percent"].samples}
        assert set(lab.hypervisors) <= cpu
        assert all(s.value > 0 for s in fams["virtdeck_host_pool_free_bytes"].samples)
    finally:
        p.terminate()
        p.wait(10)


def test_listen_and_delay_bad_input_is_one_line():
    assert parse_listen("[::1]:9177") == ("::1", 9177)
    for bad in ("9177", "127.0.0.1:", "127.0.0.1:99999", ":80"):
        with pytest.raises(ValidationError, match="listen"):
            parse_listen(bad)
    r = subprocess.run([*VIRTDECK, "metrics", "--listen", "nowhere"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.lab
def test_vm_show_carries_the_current_figures_of_a_running_vm(lab, lab_inv):
    """A transient domain idling in SeaBIOS (no disk, 32 MiB: no guest OS boots) shows CPU and
    RSS under ``now``; a stopped VM has ``now: null``."""
    import uuid as _uuid

    from virtdeck.backends.session import Session
    from metrics_helpers import running_xml
    name = "metrics-now-" + _uuid.uuid4().hex[:6]
    host = lab.hypervisors[-1]
    with Session(lab_inv) as s:
        s.libvirt(host).createXML(running_xml(name), 0)
        try:
            r = _cli(lab, "vm", "show", name, "--host", host, "--json")
            assert r.returncode == 0, r.stderr
            now = json.loads(r.stdout)["now"]
            assert now is not None and now["cpu_pct"] is not None and now["rss_mib"] > 0, now
            text = _cli(lab, "vm", "show", name, "--host", host)
            assert "  now: CPU " in text.stdout, text.stdout
        finally:
            s.libvirt(host).lookupByName(name).destroy()
