"""`template add --url` against the lab's HTTP server (backends/lab/http.py), for real: each
hypervisor downloads the image itself; a wrong sha256 is refused and leaves nothing on any host
(no volume, no partial file); an interrupted download (SIGINT to the CLI while the hosts' curls
run, rate-limited) keeps its partial files, and the next run resumes them — the server's request
log shows each host asking for ``Range: bytes=N-`` with N > 0 — and the sum still verifies.

Also pure checks of the image probe (backends/image_probe.py) on the lab's built images and of
the SHA256SUMS parser. The images are the lab's (backends/lab/image_disk.py), built once and
cached; the first run on a fresh machine builds debian12-gpt (~70 s).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from virtdeck.backends import image_probe
from virtdeck.backends.lab import http as lab_http
from virtdeck.backends.lab.image_disk import ensure_image
from virtdeck.config.inventory import load, save
from virtdeck.console.services.templates import parse_sha256sums, resolve_boot
from provision_helpers import lab_inventory, lab_session  # noqa: F401

POOL_DIR = "/var/lib/libvirt/images/virtdeck"


@pytest.fixture(scope="module")
def gpt_image():
    return ensure_image("debian12-gpt")


def test_probe_reads_the_lab_images(gpt_image):
    layout = image_probe.probe_local(gpt_image.qcow2)
    assert (layout.table, layout.esp, layout.bios_boot, layout.format) == ("gpt", True, True, "qcow2")
    assert layout.boot_modes() == ("bios", "uefi")
    assert resolve_boot(layout, "x86_64", None, False) == "bios"
    assert resolve_boot(layout, "x86_64", "uefi", False) == "uefi"
    assert layout.efi_arches == ("x86_64",)  # EFI/BOOT/BOOTX64.EFI on the ESP
    from virtdeck.console.errors import ValidationError
    with pytest.raises(ValidationError, match="boots x86_64 .*give --arch x86_64"):
        resolve_boot(layout, "aarch64", None, False)
    from virtdeck.backends.lab.image_disk import RECIPES, cached_image
    arm = cached_image(RECIPES["debian12-arm64"])  # built by the e2e test (minutes): only when cached
    if arm is not None:
        arm_layout = image_probe.probe_local(arm.qcow2)
        assert arm_layout.efi_arches == ("aarch64",)
        assert resolve_boot(arm_layout, "aarch64", None, False) == "uefi"
    bare = image_probe.DiskLayout("none", filesystem="ext")
    with pytest.raises(ValidationError, match="needs an EFI system partition"):
        resolve_boot(bare, "x86_64", "uefi", False)
    assert resolve_boot(bare, "x86_64", None, True) == "kernel"


def test_sha256sums_formats():
    h = "ab" * 32
    assert parse_sha256sums(f"{h}  debian.qcow2\n", "debian.qcow2") == h
    assert parse_sha256sums(f"{h} *debian.qcow2\n", "debian.qcow2") == h
    assert parse_sha256sums(f"SHA256 (debian.qcow2) = {h.upper()}\n", "debian.qcow2") == h
    assert parse_sha256sums(f"{h}  other.qcow2\n", "debian.qcow2") is None


@pytest.fixture
def served(gpt_image, tmp_path, lab_inventory, monkeypatch):
    """The image on the lab's HTTP server, a private inventory copy, an audit log of our own."""
    lab_http.ensure()
    fname = f"images-{uuid.uuid4().hex[:6]}.qcow2"
    url = lab_http.publish({fname: gpt_image.qcow2})[fname]
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{gpt_image.sha256}  {fname}\n")
    sums_url = lab_http.publish({f"{fname}.SHA256SUMS": sums})[f"{fname}.SHA256SUMS"]
    inv = tmp_path / "inventory.toml"
    save(lab_inventory, inv)
    monkeypatch.setenv("VIRTDECK_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    yield {"url": url, "sums_url": sums_url, "inv": inv, "fname": fname, "sha": gpt_image.sha256}
    (lab_http.root_dir() / fname).unlink(missing_ok=True)
    (lab_http.root_dir() / f"{fname}.SHA256SUMS").unlink(missing_ok=True)


def _pool_files(session, inventory, name: str) -> list[str]:
    out = []
    for h in inventory.hypervisors:
        if h.enabled:
            ls = session.run(h.name, ["ls", "-a", POOL_DIR], timeout=15).stdout.split()
            out += [f"{h.name}:{f}" for f in ls if name in f]
    return out


def _cli(*argv, timeout=600):
    exe = os.path.join(os.path.dirname(sys.executable), "virtdeck")
    return subprocess.run([exe, *argv], capture_output=True, text=True, timeout=timeout)


def _delete(inv, name):
    if any(t.name == name for t in load(inv).templates):
        assert _cli("--config", str(inv), "template", "delete", name).returncode == 0


def test_wrong_sha256_is_refused_and_leaves_nothing(served, lab_session, lab_inventory):
    name = f"imgbad{uuid.uuid4().hex[:5]}"
    r = _cli("--config", str(served["inv"]), "template", "add", name, "--url", served["url"], "--sha256", "0" * 64)
    assert r.returncode == 5, r.stderr  # a host failed (ExitCode.UNREACHABLE): the download did not verify
    assert "sha256 mismatch" in r.stderr and "nothing was recorded" in r.stderr
    assert _pool_files(lab_session, lab_inventory, name) == []
    assert all(t.name != name for t in load(served["inv"]).templates)
    # --sha256-url: the sum comes from the SHA256SUMS file on the server
    r = _cli("--config", str(served["inv"]), "--json", "template", "add", name, "--url", served["url"],
             "--sha256-url", served["sums_url"], "--os", "debian12")
    try:
        assert r.returncode == 0, r.stderr
        tpl = load(served["inv"]).template(name)
        assert (tpl.sha256, tpl.boot_mode, tpl.os) == (served["sha"], "bios", "debian12")
    finally:
        _delete(served["inv"], name)
    assert _pool_files(lab_session, lab_inventory, name) == []


def test_interrupted_download_resumes(served, lab_session, lab_inventory):
    name = f"imgres{uuid.uuid4().hex[:5]}"
    t_start = time.time()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # rate-limited so that the interrupt lands mid-download (the image is ~130 MiB)
    exe = os.path.join(os.path.dirname(sys.executable), "virtdeck")
    proc = subprocess.Popen([exe, "--config", str(served["inv"]), "template", "add", name, "--url", served["url"],
                             "--sha256", served["sha"], "--limit-rate", "8M"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # Ctrl-C as in a foreground terminal, even when this run inherited
                            # SIGINT ignored (pytest started as a background job)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            parts = [f for f in _pool_files(lab_session, lab_inventory, name) if f.endswith(".part")]
            if len(parts) == len([h for h in lab_inventory.hypervisors if h.enabled]):
                break
            time.sleep(0.5)
        time.sleep(2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, f"not interrupted mid-download: rc {proc.returncode}, {err[-500:]}"
    parts = [f for f in _pool_files(lab_session, lab_inventory, name) if f.endswith(".part")]
    assert parts, f"no partial kept: {err[-500:]}"
    assert not [f for f in _pool_files(lab_session, lab_inventory, name) if f.endswith(".qcow2")]
    # curl on each host has stopped (its PID file is gone and nothing writes the partial)
    time.sleep(1)
    sizes1 = _sizes(lab_session, lab_inventory, name)
    time.sleep(1.5)
    assert _sizes(lab_session, lab_inventory, name) == sizes1
    assert all(0 < s < served_size(served) for s in sizes1.values()), sizes1
    r = _cli("--config", str(served["inv"]), "template", "add", name, "--url", served["url"],
             "--sha256", served["sha"])
    try:
        assert r.returncode == 0, r.stderr
        ranges = {x["client"]: x["range"] for x in lab_http.requests_log()
                  if x["t"] >= t_start and x["path"].endswith(served["fname"]) and x["method"] == "GET" and x["range"]}
        starts = {c: int(v.split("=")[1].split("-")[0]) for c, v in ranges.items()}
        assert len(starts) == len(sizes1) and all(n > 0 for n in starts.values()), (ranges, sizes1)
        print(f"\n[images] resumed downloads at byte offsets {starts} (partials kept: {sizes1})")
        assert not [f for f in _pool_files(lab_session, lab_inventory, name) if f.endswith(".part")]
    finally:
        _delete(served["inv"], name)


def served_size(served) -> int:
    return (lab_http.root_dir() / served["fname"]).stat().st_size


def _sizes(session, inventory, name) -> dict[str, int]:
    out = {}
    for h in inventory.hypervisors:
        if h.enabled:
            r = session.run(h.name, ["sh", "-c", f"stat -c %s {POOL_DIR}/.{name}.qcow2.*.part"], timeout=15)
            if r.stdout.strip().isdigit():
                out[h.name] = int(r.stdout.strip())
    return out


pytestmark = pytest.mark.lab
