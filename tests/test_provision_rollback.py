"""create_vm on the lab: a failure at EVERY step undoes everything (zero orphans in libvirt and
OVN), bad input creates nothing, concurrent creates do not oversubscribe a host.

Failures are real: a hook raising between steps (after the step's own work is done), and
sabotage that makes libvirt/OVN itself refuse (a volume or domain already there, a network gone,
a disk deleted under the domain). Nothing of libvirt or OVN is mocked.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import subprocess
import uuid

import libvirt
import pytest

from virtdeck.backends import scheduler, storage
from virtdeck.backends.ovn import networks as ovn_networks, security_groups as ovn_sg
from virtdeck.console import cloudinit
from virtdeck.console.errors import ReadOnlyError
from virtdeck.console.services import guard
from virtdeck.console.services import placement
from virtdeck.console.services import provision as pv
from provision_helpers import lab_session, leftovers, remove_vm, roomy  # noqa: F401
from provision_helpers import _lab_inventory

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def real_inventory(request):
    return _lab_inventory(request)


@pytest.fixture(scope="module")
def lab_inventory(real_inventory):
    """The lab's inventory with generous ratios: these tests are not about capacity (see roomy)."""
    return roomy(real_inventory)


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    d = tmp_path_factory.mktemp("k")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "id")], check=True)
    return (d / "id.pub").read_text().strip()


@pytest.fixture(scope="module")
def pw_hash():
    return cloudinit.hash_password("rollback-pass")


@pytest.fixture(scope="module")
def tenant(lab_session):
    """A throwaway tenant with one overlay network "net1"; removed afterwards (cascade)."""
    t = f"t4r{uuid.uuid4().hex[:6]}"
    nb = lab_session.nb()
    ovn_networks.create_network(nb, ovn_networks.NetworkSpec(
        tenant=t, name="net1", kind="overlay", cidr="10.45.0.0/24", gateway="10.45.0.1"))
    yield t
    ovn_networks.delete_network(nb, t, "net1", cascade=True)
    for pg in ovn_sg.list_security_groups(nb, t):
        ovn_sg.delete_security_group(nb, t, pg.name)


@pytest.fixture
def audit_log(tmp_path, monkeypatch):
    path = tmp_path / "audit.jsonl"
    monkeypatch.setenv("VIRTDECK_AUDIT_LOG", str(path))
    return path


def request(tenant, key, pw_hash, **kw):
    base = dict(name=f"t4-{uuid.uuid4().hex[:6]}", tenant=tenant, template="debian12", vcpus=1,
                ram_mib=256, disk_gib=3, networks=("net1",), ssh_keys=(key,), password_hash=pw_hash)
    base.update(kw)
    return pv.VmRequest(**base)


def ovn_snapshot(nb, tenant) -> dict:
    """Every NB row tagged with ``tenant`` (other engineers change other tenants meanwhile)."""
    out = {}
    for table, t in nb.tables.items():
        if "external_ids" in t.columns:
            rows = sorted(str(r.uuid) for r in t.rows.values()
                          if (r.external_ids or {}).get("virtdeck:tenant") == tenant)
            if rows:
                out[table] = rows
    return out


class Injected(Exception):
    pass


@pytest.mark.parametrize("step", pv.STEP_NAMES)
def test_failure_after_each_step_leaves_nothing(lab_session, lab_inventory, tenant, key, pw_hash,
                                                audit_log, step):
    req = request(tenant, key, pw_hash)
    before = ovn_snapshot(lab_session.nb(), tenant)
    events = []

    def hook(phase, s, ctx):
        if phase == "after" and s == step:
            raise Injected(f"injected after {s}")

    try:
        with pytest.raises(pv.CreateError) as e:
            pv.create_vm(lab_session, lab_inventory, req, progress=lambda *a: events.append(a), hook=hook)
        err = e.value
        assert err.step == step and "injected after" in str(err) and err.left == []
        assert "nothing was left behind" in str(err)
        assert leftovers(lab_session, lab_inventory, tenant, req.name) == {"domains": [], "volumes": [], "ports": []}
        assert ovn_snapshot(lab_session.nb(), tenant) == before
        # every step that made something reported its undo
        undone = {s for s, status, _ in events if status == "undone"}
        made = {"placement", "disk", "seed", "ports", "define", "start"} & set(pv.STEP_NAMES[:pv.STEP_NAMES.index(step) + 1])
        assert undone == made
        assert (step, "failed", f"Injected: injected after {step}") in events
        assert scheduler.LEDGER.held() == {}  # the claim went with the rest
        rec = json.loads(audit_log.read_text().splitlines()[-1])
        assert rec["verb"] == "vm.create" and rec["outcome"].startswith(f"failed: {step}:")
        assert pw_hash not in audit_log.read_text()
    finally:
        remove_vm(lab_session, lab_inventory, tenant, req.name)


def test_real_failures_roll_back(lab_session, lab_inventory, tenant, key, pw_hash):
    """libvirt / OVN themselves refuse at disk, seed, ports, domain, define and start."""
    nb = lab_session.nb()
    tpl = lab_inventory.template("debian12")
    before = ovn_snapshot(nb, tenant)

    def run(req, sabotage, expect_step, match):
        def hook(phase, s, ctx):
            if phase == "before" and s == expect_step:
                sabotage(ctx)
        with pytest.raises(pv.CreateError) as e:
            pv.create_vm(lab_session, lab_inventory, req, hook=hook)
        assert e.value.step == expect_step, str(e.value)
        assert match in str(e.value), str(e.value)
        assert e.value.left == []
        return e.value

    # disk: a volume of that name already exists (someone else's): refused, and NOT deleted
    req = request(tenant, key, pw_hash, host="hv1")
    conn = lab_session.libvirt("hv1")
    squat = lambda ctx, n=f"{req.name}.qcow2": storage.upload_volume(conn, "hv1", tpl.pool, n, b"x" * 512)  # noqa
    run(req, squat, "disk", "already exists")
    assert storage.find_volume(conn, "hv1", tpl.pool, f"{req.name}.qcow2") is not None
    storage.delete_volume(conn, "hv1", tpl.pool, f"{req.name}.qcow2")
    assert leftovers(lab_session, lab_inventory, tenant, req.name)["volumes"] == []

    # seed: the seed volume name is taken
    req = request(tenant, key, pw_hash, host="hv1")
    squat = lambda ctx, n=f"{req.name}-seed.iso": storage.upload_volume(conn, "hv1", tpl.pool, n, b"x" * 512)  # noqa
    run(req, squat, "seed", "already exists")
    storage.delete_volume(conn, "hv1", tpl.pool, f"{req.name}-seed.iso")
    assert leftovers(lab_session, lab_inventory, tenant, req.name) == {"domains": [], "volumes": [], "ports": []}

    # ports: the address asked for is taken by then (another port got it after the checks;
    # OVN's rows say so). The gateway's address is refused before any step now.
    req = request(tenant, key, pw_hash, ips=("10.45.0.77",))
    squatter = f"squat-{uuid.uuid4().hex[:6]}"

    def take_ip(ctx):
        sw = ovn_networks.find_network(nb, "net1", tenant).switch
        nb.lsp_add(sw, squatter).execute(check_error=True)
        nb.lsp_set_addresses(squatter, ["02:00:00:45:00:77 10.45.0.77"]).execute(check_error=True)
    try:
        run(req, take_ip, "ports", "already used")
    finally:
        nb.lsp_del(squatter, if_exists=True).execute(check_error=True)
    assert leftovers(lab_session, lab_inventory, tenant, req.name) == {"domains": [], "volumes": [], "ports": []}

    # domain: the template's kernel volume is not on the host
    req = request(tenant, key, pw_hash)

    def no_kernel(ctx):
        ctx.template = dataclasses.replace(ctx.template, kernel="no-such.vmlinuz")
    run(req, no_kernel, "domain", "no-such.vmlinuz")
    assert leftovers(lab_session, lab_inventory, tenant, req.name) == {"domains": [], "volumes": [], "ports": []}

    # define: a domain of that name appeared meanwhile (libvirt refuses a second UUID)
    req = request(tenant, key, pw_hash, host="hv2")
    conn2 = lab_session.libvirt("hv2")
    other = f"<domain type='qemu'><name>{req.name}</name><memory unit='MiB'>64</memory><os><type>hvm</type></os></domain>"
    try:
        run(req, lambda ctx: conn2.defineXML(other), "define", "already exists")
        # ours was never defined, theirs must still be there
        assert conn2.lookupByName(req.name).UUIDString() != ""
    finally:
        try:
            conn2.lookupByName(req.name).undefine()
        except libvirt.libvirtError:
            pass
    assert leftovers(lab_session, lab_inventory, tenant, req.name) == {"domains": [], "volumes": [], "ports": []}

    # start: the disk vanished under the defined domain
    req = request(tenant, key, pw_hash, host="hv1")
    run(req, lambda ctx: storage.delete_volume(conn, "hv1", tpl.pool, ctx.disk.name), "start", "start:")
    assert leftovers(lab_session, lab_inventory, tenant, req.name) == {"domains": [], "volumes": [], "ports": []}
    assert ovn_snapshot(nb, tenant) == before


def test_bad_input_creates_nothing(lab_session, lab_inventory, tenant, key, pw_hash):
    nb = lab_session.nb()
    before = ovn_snapshot(nb, tenant)
    cases = [
        (dict(name="Bad_Name"), "validate", "name"),
        (dict(vcpus=0), "validate", "vcpus"),
        (dict(ram_mib=16), "validate", "ram"),
        (dict(template="nope"), "validate", "template"),
        (dict(networks=("nope",)), "validate", "networks"),
        (dict(ssh_keys=("ssh-ed25519 AAAA",)), "validate", "ssh-keys"),
        (dict(password_hash="plain"), "validate", "password"),
        (dict(user_data="password: x\n"), "validate", "user-data"),
        (dict(user_data="a: [\n"), "validate", "user-data"),
        (dict(host="hv9"), "validate", "host"),
        (dict(disk_gib=1), "placement", "disk"),
    ]
    for kw, step, field in cases:
        req = request(tenant, key, pw_hash, **kw)
        with pytest.raises(pv.CreateError) as e:
            pv.create_vm(lab_session, lab_inventory, req)
        assert e.value.step == step, (kw, str(e.value))
        assert getattr(e.value, "field", None) == field, (kw, str(e.value))
        assert e.value.exit_code == 2
        assert leftovers(lab_session, lab_inventory, tenant, req.name) == {"domains": [], "volumes": [], "ports": []}
    assert ovn_snapshot(nb, tenant) == before
    # no host fits: the message lists every host and why, exit 2, nothing made
    tight = roomy(lab_inventory, cpu_ratio=0.5)
    req = request(tenant, key, pw_hash, vcpus=64)
    with pytest.raises(pv.CreateError) as e:
        pv.create_vm(lab_session, tight, req)
    assert e.value.step == "placement" and getattr(e.value, "field", None) == "host" and e.value.exit_code == 2
    assert "hv1: vcpus:" in str(e.value) and "hv2: vcpus:" in str(e.value)
    assert leftovers(lab_session, lab_inventory, tenant, req.name) == {"domains": [], "volumes": [], "ports": []}


def test_name_taken_and_readonly(lab_session, lab_inventory, tenant, key, pw_hash):
    req = request(tenant, key, pw_hash, start=False)
    try:
        res = pv.create_vm(lab_session, lab_inventory, req)
        assert not res.running and res.host in ("hv1", "hv2")
        with pytest.raises(pv.CreateError, match=f"a VM named '{req.name}' already exists on {res.host}"):
            pv.create_vm(lab_session, lab_inventory, dataclasses.replace(req, instance_id=None))
    finally:
        remove_vm(lab_session, lab_inventory, tenant, req.name)
    guard.set_readonly(True)
    try:
        with pytest.raises(ReadOnlyError):
            pv.create_vm(lab_session, lab_inventory, request(tenant, key, pw_hash))
    finally:
        guard.set_readonly(False)


def test_concurrent_creates_do_not_oversubscribe(lab_session, real_inventory, tenant, key, pw_hash):
    """Three creates pinned to hv1 at once, each too big for two to fit: exactly one wins.

    The CPU ratio is set so hv1 has room for exactly 3 more vCPUs whatever else is on it."""
    snap = placement.host_snapshot(lab_session, real_inventory.host("hv1"), real_inventory.template("debian12"))
    ratio = (snap.facts.alloc_vcpus + 3) / snap.facts.cores
    inv = roomy(real_inventory, cpu_ratio=ratio)
    if int(snap.facts.cores * ratio) - snap.facts.alloc_vcpus != 3:
        pytest.skip("cannot make exactly 3 vCPUs of room with a float ratio here")
    reqs = [request(tenant, key, pw_hash, host="hv1", vcpus=2, start=False) for _ in range(3)]
    try:
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            futs = [pool.submit(pv.create_vm, lab_session, inv, r) for r in reqs]
            outcomes = [f.exception() or f.result() for f in futs]
        wins = [o for o in outcomes if isinstance(o, pv.CreateResult)]
        losses = [o for o in outcomes if isinstance(o, pv.CreateError)]
        assert len(wins) == 1 and len(losses) == 2, outcomes
        for loss in losses:
            assert loss.step == "placement" and "hv1: vcpus:" in str(loss)
    finally:
        for r in reqs:
            remove_vm(lab_session, real_inventory, tenant, r.name)


def test_anti_affinity_group_from_domain_metadata(lab_session, lab_inventory, tenant, key, pw_hash):
    """The group is kept in the domain's metadata; a second member is refused on that host."""
    a = request(tenant, key, pw_hash, anti_affinity="web", host="hv1", start=False)
    try:
        pv.create_vm(lab_session, lab_inventory, a)
        dom = lab_session.libvirt("hv1").lookupByName(a.name)
        assert f'group="web"' in dom.XMLDesc(0) and pv.PLACEMENT_NS in dom.XMLDesc(0)
        b = request(tenant, key, pw_hash, anti_affinity="web")
        preview = pv.plan(lab_session, lab_inventory, b)
        assert "anti-affinity: already holds a member of group 'web'" in preview.placement.verdict("hv1").reasons
        assert preview.placement.host != "hv1"
        with pytest.raises(pv.CreateError, match="anti-affinity"):
            pv.create_vm(lab_session, lab_inventory, dataclasses.replace(b, host="hv1"))
    finally:
        remove_vm(lab_session, lab_inventory, tenant, a.name)


def test_provider_network_needs_a_bridge_mapping(lab_session, lab_inventory, tenant, key, pw_hash):
    """A provider network's physnet must be in the host's ovn-bridge-mappings (read over SSH)."""
    nb = lab_session.nb()
    for name, physnet, cidr in (("prov", "physnet1", "10.145.0.0/24"), ("nowhere", "physnet9", "10.146.0.0/24")):
        ovn_networks.create_network(nb, ovn_networks.NetworkSpec(
            tenant=tenant, name=name, kind="provider", cidr=cidr, gateway=cidr.replace("0/24", "1"),
            physnet=physnet, vlan=300, mtu=1500))
    try:
        ok = pv.plan(lab_session, lab_inventory, request(tenant, key, pw_hash, networks=("net1", "prov")))
        assert ok.placement.host in ("hv1", "hv2")
        assert all(not v.refused for v in ok.placement.verdicts)
        bad = pv.plan(lab_session, lab_inventory, request(tenant, key, pw_hash, networks=("nowhere",)))
        assert bad.placement.host is None
        for v in bad.placement.verdicts:
            assert "physnet: no bridge mapping for physnet9 (host maps: physnet1)" in v.reasons
    finally:
        for name in ("prov", "nowhere"):
            ovn_networks.delete_network(nb, tenant, name, cascade=True)
