"""Down and up with N = 3 and N = 2, repair of a half-built lab, and the one-line refusals.

Not collected by a normal run: tests/lab/test_lab_cycle.py runs this file in its own pytest
inside a sandbox (fresh network + mount namespaces, private /run/netns, a temporary lab dir), so
taking a lab down never touches the lab other tests and people are using. Standing alone, the
tests still refuse to cycle a lab this session did not bring up itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from virtdeck.backends.lab import topology as topo
from virtdeck.backends.lab.state import pid_alive

pytestmark = [pytest.mark.lab, pytest.mark.lab_cycle]
VIRTDECK = str(Path(sys.executable).with_name("virtdeck"))


@pytest.fixture(scope="module")
def own_lab(lab):
    from fixtures_lab import _other_users
    if not lab.brought_up or _other_users():
        pytest.skip("the lab was already up (or is shared): not cycling someone else's lab")
    yield lab
    # Whatever happened, hand the session a ready 2-hypervisor lab.
    from virtdeck.backends.lab.status import check
    from virtdeck.backends.lab.up import up
    if not check(2).ready:
        up(2, log=lambda m: None)


def cli(*args, timeout=600, user=None):
    argv = [VIRTDECK, *args]
    if user:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def lab_processes() -> list[int]:
    from virtdeck.backends.lab.netns import lab_netns, netns_pids
    return [p for ns in lab_netns() for p in netns_pids(ns)]


def assert_nothing_left(holders: dict):
    from virtdeck.backends.lab.down import leftovers
    assert leftovers() == []
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    for name in (topo.UNDERLAY_BRIDGE, topo.PHYSNET_BRIDGE, "vu-", "vp-", "vt-"):
        assert f" {name}" not in out
    assert subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.strip() == "" \
        or "vd-" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    # (mounts: leftovers() counts the namespace mounts visible here, see its comment)
    for name, pid in holders.items():
        assert not pid_alive(pid), f"holder of {name} ({pid}) survived"
    assert lab_processes() == []


def ssh_hostname(address: str) -> str:
    from virtdeck.backends.lab.status import ssh_argv
    return subprocess.run(ssh_argv(address, ["hostname"]), capture_output=True, text=True,
                          timeout=30).stdout.strip()


def test_down_up3_down_up2(own_lab):
    from virtdeck.backends.lab.state import load_state
    from virtdeck.backends.lab.status import check
    import libvirt
    import uuid
    from virtdeck.backends.domain_xml import DomainSpec, domain_xml
    from virtdeck.backends.lab.hosts import libvirt_uri
    # Something for down to destroy: a defined (stopped) domain on hv1.
    conn = libvirt.open(libvirt_uri("hv1"))
    conn.defineXML(domain_xml(DomainSpec("leftover", str(uuid.uuid4()), 1, 64, "/nonexistent.qcow2",
                                         domain_type="qemu")))
    conn.close()
    holders = load_state()["holders"]
    p = cli("lab", "down")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "nothing left" in p.stdout and "hv1: destroyed 1 guest(s)" in p.stdout
    assert_nothing_left(holders)
    assert cli("lab", "status").returncode == 1

    p = cli("lab", "up", "--hypervisors", "3")
    assert p.returncode == 0, p.stdout + p.stderr
    st = check()
    assert st.ready and st.chassis == ("hv1", "hv2", "hv3")
    assert ssh_hostname("192.168.100.13") == "hv3"

    holders = load_state()["holders"]
    p = cli("lab", "down")
    assert p.returncode == 0, p.stdout + p.stderr
    assert_nothing_left(holders)

    p = cli("lab", "up")
    assert p.returncode == 0, p.stdout + p.stderr
    st = check()
    assert st.ready and st.hypervisors == 2 and st.chassis == ("hv1", "hv2")


def test_scale_up_and_down_in_place(own_lab):
    from virtdeck.backends.lab.state import load_state
    from virtdeck.backends.lab.status import check
    keep = load_state()["holders"]
    p = cli("lab", "up", "-n", "3")
    assert p.returncode == 0, p.stdout + p.stderr
    assert check().chassis == ("hv1", "hv2", "hv3")
    p = cli("lab", "up", "-n", "2")
    assert p.returncode == 0, p.stdout + p.stderr
    assert check().chassis == ("hv1", "hv2")
    assert "vd-hv3" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert load_state()["holders"] == keep  # hv1, hv2, central, outside untouched


def test_half_built_lab_is_repaired(own_lab):
    from virtdeck.backends.lab.state import kill_pids, load_state
    from virtdeck.backends.lab.status import check
    from virtdeck.backends.lab.netns import netns_pids
    # A holder and everything in its namespace gone, as after a crash: namespace still there.
    kill_pids(netns_pids("vd-hv2"))
    assert not check().ready
    p = cli("lab", "up")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "half-built" in p.stdout
    assert check().ready
    assert ssh_hostname("192.168.100.12") == "hv2"
    assert pid_alive(load_state()["holders"]["hv2"])


def test_refusals_are_one_line(own_lab, tmp_path):
    # Not root.
    p = cli("lab", "up", user="65534", timeout=60)
    assert p.returncode != 0
    assert "needs root" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    # Out of range.
    p = cli("lab", "up", "-n", "9")
    assert p.returncode != 0 and "between 1 and 4" in p.stderr and "Traceback" not in p.stderr


def test_underlay_taken_is_refused(own_lab):
    p = cli("lab", "down")
    assert p.returncode == 0
    subprocess.run(["ip", "link", "add", "vdtest-br", "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", "192.168.100.1/24", "dev", "vdtest-br"], check=True)
        p = cli("lab", "up")
        assert p.returncode != 0
        assert "192.168.100.0/24 is already used by vdtest-br" in p.stderr
        assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    finally:
        subprocess.run(["ip", "link", "del", "vdtest-br"])
    p = cli("lab", "up")
    assert p.returncode == 0, p.stdout + p.stderr


def test_bridge_name_taken_by_something_else_is_refused(own_lab):
    p = cli("lab", "down")
    assert p.returncode == 0
    subprocess.run(["ip", "link", "add", topo.PHYSNET_BRIDGE, "type", "veth", "peer", "name", "vdtest-p"],
                   check=True)
    try:
        p = cli("lab", "up")
        assert p.returncode != 0
        assert f"interface {topo.PHYSNET_BRIDGE} exists and is not a bridge (veth)" in p.stderr
        assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    finally:
        subprocess.run(["ip", "link", "del", "vdtest-p"])
    p = cli("lab", "up")
    assert p.returncode == 0, p.stdout + p.stderr


def test_changed_template_replaces_pool_volumes_unless_a_disk_is_backed_by_them(own_lab, tmp_path):
    """A new template build (recipe changed) is installed by the next `up` — but never under
    an overlay that uses the old one as its backing file."""
    import json
    import shutil

    import libvirt

    from virtdeck.backends.lab.hosts import libvirt_uri
    from virtdeck.backends.lab.image import NAME, cached_template, sha256_file
    tpl = cached_template()
    # A "new build": same recipe hash, different qcow2 bytes (one more byte).
    new = tmp_path / "images" / NAME
    new.mkdir(parents=True)
    for f in tpl.qcow2.parent.iterdir():
        shutil.copyfile(f, new / f.name)
    with open(new / f"{NAME}.qcow2", "ab") as f:
        f.write(b"\0")
    manifest = json.loads((new / "manifest.json").read_text())
    manifest["files"][f"{NAME}.qcow2"] += 1
    manifest["sha256"] = sha256_file(new / f"{NAME}.qcow2")
    (new / "manifest.json").write_text(json.dumps(manifest))
    env_cache = str(tmp_path / "images")

    conn = libvirt.open(libvirt_uri("hv1"))
    pool = conn.storagePoolLookupByName(topo.POOL_NAME)
    base = pool.storageVolLookupByName(f"{NAME}.qcow2").path()
    overlay = pool.createXML(f"""<volume><name>users-disk.qcow2</name><capacity unit='GiB'>1</capacity>
<target><format type='qcow2'/></target><backingStore><path>{base}</path><format type='qcow2'/></backingStore>
</volume>""", 0)
    try:
        p = subprocess.run([VIRTDECK, "lab", "up"], capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, VIRTDECK_IMAGE_CACHE=env_cache))
        assert p.returncode != 0
        assert "hv1: the template changed but 1 disk(s) are backed by the old debian12.qcow2" in p.stderr
        assert "Traceback" not in p.stderr
    finally:
        overlay.delete(0)
        conn.close()
    p = subprocess.run([VIRTDECK, "lab", "up"], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, VIRTDECK_IMAGE_CACHE=env_cache))
    assert p.returncode == 0, p.stdout + p.stderr
    from virtdeck.config.inventory import load
    assert load(own_lab.inventory).templates[0].sha256 == manifest["sha256"]
    p = own_lab.ssh("hv2", ["sha256sum", f"{topo.POOL_PATH}/{NAME}.qcow2"])
    assert p.stdout.split()[0] == manifest["sha256"]
    # And back to the real template for the rest of the session.
    p = subprocess.run([VIRTDECK, "lab", "up"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
