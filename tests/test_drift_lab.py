"""The drift check on the shared lab: each kind of drift is made from OUTSIDE virtdeck (ovn-nbctl on
central, ovs-vsctl on a hypervisor, a second inventory) next to a well-made VM, and the check lists
each with the right fix, nothing about the well-made VM, network or router, and no finding that an
outside look (virsh / ovn-nbctl) contradicts — with other engineers' VMs around. Removing the safe
findings removes those orphans and nothing else.

Every name carries this module's tag (``dr`` + 5 hex) so runs and other engineers never collide;
the fix is run on this module's findings only (the shared lab may hold others' in-flight work).
"""

from __future__ import annotations

import random
import subprocess
import time
import uuid
from dataclasses import replace

import pytest

from virtdeck.backends import storage
from virtdeck.backends.ovn import networks as ovn_networks, routers as ovn_routers
from virtdeck.console.services import drift
from provision_helpers import lab_inventory, lab_session  # noqa: F401 (fixtures)
from vm_lab_helpers import POOL, make_vm

pytestmark = pytest.mark.lab

TAG = f"dr{uuid.uuid4().hex[:5]}"
TENANT = "demo"


def nbctl(lab, *args) -> str:
    return lab.nbctl(*args, timeout=20)


def _net(nb, name, kind="overlay", physnet=None):
    a, b = random.randint(100, 250), random.randint(0, 255)
    return ovn_networks.create_network(nb, ovn_networks.NetworkSpec(
        tenant=TENANT, name=name, kind=kind, cidr=f"10.{a}.{b}.0/24", gateway=f"10.{a}.{b}.1",
        physnet=physnet, mtu=1400 if kind == "overlay" else 1500))


def _remove_vm(session, host, name):
    from virtdeck.backends import domains
    conn = session.libvirt(host)
    try:
        dom = conn.lookupByName(name)
        domains.remove(conn, host, dom.UUIDString(), name)
    except Exception:  # noqa: BLE001 - not there
        pass
    for vol in (f"{name}.qcow2", f"{name}-seed.iso"):
        storage.delete_volume(conn, host, POOL, vol)


@pytest.fixture(scope="module")
def world(lab, lab_session, lab_inventory):
    """A well-made VM (control) and one injected drift of each kind; removed afterwards."""
    s, inv = lab_session, lab_inventory
    nb = s.nb()
    w: dict = {"vms": []}
    net = _net(nb, f"{TAG}a")
    net_dhcp = _net(nb, f"{TAG}b")
    prov = _net(nb, f"{TAG}p", kind="provider", physnet=f"{TAG}phys")   # mapped on no host
    router = ovn_routers.create_router(nb, TENANT, f"{TAG}r")
    w.update(net=net, net_dhcp=net_dhcp, prov=prov, router=router)
    try:
        # the control: made as the provisioning service makes it
        w["ok_lsp"] = make_vm(s, inv, net, "hv1", f"{TAG}-ok")
        w["vms"].append(("hv1", f"{TAG}-ok"))
        # lsp-orphan: an LSP tagged for a VM that no hypervisor has
        ghost = str(uuid.uuid4())
        nbctl(lab, "lsp-add", net.switch, ghost, "--", "set", "Logical_Switch_Port", ghost,
              f'external_ids:"virtdeck:vm"={TAG}-ghost', f'external_ids:"virtdeck:tenant"={TENANT}')
        w["ghost_lsp"] = ghost
        # nic-no-lsp: a VM whose LSP was deleted behind virtdeck's back
        w["nolsp_lsp"] = make_vm(s, inv, net, "hv2", f"{TAG}-nolsp")
        w["vms"].append(("hv2", f"{TAG}-nolsp"))
        nbctl(lab, "lsp-del", w["nolsp_lsp"])
        # binding-elsewhere: hv2 claims the port of a VM defined on hv1 (an OVS port with its iface-id)
        w["bound_lsp"] = make_vm(s, inv, net, "hv1", f"{TAG}-bound")
        w["vms"].append(("hv1", f"{TAG}-bound"))
        lab.run_in("hv2", ["ovs-vsctl", "--timeout=20", "add-port", "br-int", f"{TAG}x", "--", "set",
                           "Interface", f"{TAG}x", "type=internal", f"external_ids:iface-id={w['bound_lsp']}"])
        # physnet-missing: a VM on a provider network whose physnet hv1 does not map
        w["phys_lsp"] = make_vm(s, inv, prov, "hv1", f"{TAG}-phys")
        w["vms"].append(("hv1", f"{TAG}-phys"))
        # dhcp-cidr: the DHCP options of network b moved to another CIDR
        nbctl(lab, "set", "DHCP_Options", net_dhcp.dhcp_options, "cidr=192.0.2.0/24")
        # fip-orphan: a floating IP for a port that does not exist
        w["fip_port"] = str(uuid.uuid4())
        nbctl(lab, "--", "--id=@n", "create", "NAT", "type=dnat_and_snat", "external_ip=198.51.100.77",
              "logical_ip=10.250.0.77", f"logical_port={w['fip_port']}", "--", "add", "Logical_Router",
              router.router, "nat", "@n")
        # the SB binding of the stolen port appears once hv2's ovn-controller claims it
        from virtdeck.backends.ovn import southbound
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            b = southbound.snapshot(s).binding(w["bound_lsp"])
            if b is not None and b.chassis:
                break
            time.sleep(0.5)
        w["report"] = drift.check(s)
        yield w
    finally:
        subprocess.run(lab.ssh_argv("hv2", ["ovs-vsctl", "--if-exists", "del-port", "br-int", f"{TAG}x"]),
                       capture_output=True, timeout=60)
        for host, name in w["vms"]:
            _remove_vm(s, host, name)
        for n in (f"{TAG}a", f"{TAG}b", f"{TAG}p"):
            try:
                ovn_networks.delete_network(nb, TENANT, n, cascade=True)
            except Exception:  # noqa: BLE001
                pass
        try:
            ovn_routers.delete_router(nb, TENANT, f"{TAG}r")
        except Exception:  # noqa: BLE001
            pass


def mine(report) -> list[drift.Finding]:
    return [f for f in report["_findings"] if TAG in f.subject or TAG in f.detail
            or any(TAG in str(v) for v in f.scope.values())]


def by_kind(report, kind) -> list[drift.Finding]:
    return [f for f in mine(report) if f.kind == kind]


def test_each_injected_drift_is_listed_with_its_fix(world):
    r = world["report"]
    (f,) = by_kind(r, "lsp-orphan")
    assert world["ghost_lsp"] in f.subject and f.safe and "remove the LSP" in f.fix
    (f,) = by_kind(r, "nic-no-lsp")
    assert f.scope["vm"] == f"{TAG}-nolsp" and world["nolsp_lsp"] in f.detail and not f.safe
    assert "virsh detach-interface" in f.fix and "lsp-add" in f.fix
    (f,) = by_kind(r, "binding-elsewhere")
    assert f.scope["vm"] == f"{TAG}-bound" and "chassis hv2" in f.detail and "iface-id=" in f.fix
    (f,) = by_kind(r, "physnet-missing")
    assert f.scope["vm"] == f"{TAG}-phys" and f"{TAG}phys" in f.detail and "ovn-bridge-mappings" in f.fix
    (f,) = by_kind(r, "dhcp-cidr")
    assert f.scope["network"] == f"{TAG}b" and "192.0.2.0/24" in f.detail and "ovn-nbctl set DHCP_Options" in f.fix
    (f,) = by_kind(r, "fip-orphan")
    assert world["fip_port"] in f.detail and f.safe and f.scope["router"] == f"{TAG}r"
    kinds = sorted(f.kind for f in mine(r))
    assert kinds == sorted(["lsp-orphan", "nic-no-lsp", "binding-elsewhere", "physnet-missing",
                            "dhcp-cidr", "fip-orphan"]), [f.subject for f in mine(r)]


def test_the_well_made_vm_network_and_router_have_no_finding(world, lab_session):
    assert not [f for f in world["report"]["_findings"] if f.scope.get("vm") == f"{TAG}-ok"]
    rep = drift.check(lab_session, "vm", f"{TAG}-ok")
    assert rep["findings"] == [] and not rep["partial"], rep["findings"]


def _contradicted(lab, findings) -> list:
    """The findings that virsh / ovn-nbctl, asked now, contradict."""
    domains = set()
    for hv in ("hv1", "hv2"):
        out = lab.run_in(hv, ["virsh", "-c", "qemu:///system", "list", "--all", "--name"]).stdout
        domains |= {(hv, n.strip()) for n in out.splitlines() if n.strip()}
    names = {n for _, n in domains}
    lsps = set(nbctl(lab, "--bare", "--columns=name", "list", "Logical_Switch_Port").split())
    bad = []
    for f in findings:
        if f.kind == "lsp-orphan":
            ok = f.target["vm"] not in names and f.target["lsp"] in lsps
        elif f.kind == "nic-no-lsp":
            iid = f.detail.split("interfaceid ")[1].split()[0]
            ok = iid not in lsps and (f.host, f.scope["vm"]) in domains
        elif f.kind == "volume-orphan":
            ok = (f.host, f.target["vm"]) not in domains
        elif f.kind == "fip-orphan":
            ok = f.detail.split("LSP ")[1].split()[0] not in lsps
        else:
            ok = True
        if not ok:
            bad.append(f)
    return bad


def test_no_finding_is_contradicted_from_outside(world, lab, lab_session):
    """Every finding of the whole lab (others' VMs included) checked with virsh / ovn-nbctl. A
    finding the outside look contradicts must not survive a second check: other engineers' test
    helpers make an LSP a moment before its domain, without the owner mark a real create holds,
    and such a moment is not a false finding if it is gone on the next look."""
    bad = _contradicted(lab, world["report"]["_findings"])
    if bad:
        time.sleep(3)
        again = {(f.kind, f.subject) for f in drift.check(lab_session)["_findings"]}
        bad = [f for f in _contradicted(lab, [f for f in bad if (f.kind, f.subject) in again])]
    assert bad == [], [(f.kind, f.subject) for f in bad]


def test_check_cli_json_and_scope(world, lab, capsys, monkeypatch):
    from virtdeck.console import cli
    monkeypatch.setenv("VIRTDECK_AUDIT_LOG", "/dev/null")
    rc = cli.main(["--config", str(lab.inventory), "check", "vm", f"{TAG}-phys", "--json"])
    import json
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and [f["kind"] for f in out["findings"]] == ["physnet-missing"]
    rc = cli.main(["--config", str(lab.inventory), "check", "vm", f"{TAG}-ok"])
    assert rc == 0 and "no drift" in capsys.readouterr().out


def test_vm_chain_checks_each_link(world, lab_session):
    rep = drift.check(lab_session, "vm", f"{TAG}-bound")
    links = {c["link"]: c for c in rep["chain"]}
    assert links["vm"]["text"].startswith(f"VM {TAG}-bound on hv1")
    assert links["nic"]["state"] == "ok" and world["bound_lsp"] in links["nic"]["text"]
    assert links["switch"]["state"] == "ok" and f"network {TAG}a" in links["switch"]["text"]
    assert links["binding"]["state"] == "drift" and "chassis hv2" in links["binding"]["text"]
    rep = drift.check(lab_session, "vm", f"{TAG}-phys")
    (phys,) = [c for c in rep["chain"] if c["link"] == "physnet"]
    assert phys["state"] == "drift" and "not mapped" in phys["text"]
    rep = drift.check(lab_session, "vm", f"{TAG}-ok")
    assert [c["state"] for c in rep["chain"]] == ["ok"] * len(rep["chain"]) and len(rep["chain"]) >= 4
    assert "  <- drift" not in "\n".join(drift.check_text(rep))
    rep = drift.check(lab_session, "vm", f"{TAG}-none")
    assert drift.check_text(rep)[-1].startswith(f"no vm named {TAG}-none")


def test_network_router_and_host_chains(world, lab_session):
    rep = drift.check(lab_session, "network", f"{TAG}b")
    (dhcp,) = [c for c in rep["chain"] if c["link"] == "dhcp"]
    assert dhcp["state"] == "drift" and "192.0.2.0/24 != subnet" in dhcp["text"]
    rep = drift.check(lab_session, "network", f"{TAG}a")
    ports = {c["text"].split()[1]: c for c in rep["chain"] if c["link"] == "port"}
    assert ports[world["ok_lsp"]]["state"] == "ok" and ports[world["bound_lsp"]]["state"] == "drift"
    assert ports[world["ghost_lsp"]]["state"] == "drift" and "no domain uses it" in ports[world["ghost_lsp"]]["text"]
    rep = drift.check(lab_session, "host", "hv1")
    assert rep["chain"][1]["link"] == "chassis" and rep["chain"][1]["state"] == "ok"
    (bound,) = [c for c in rep["chain"] if world["bound_lsp"] in c["text"]]
    assert bound["state"] == "drift" and "bound on hv2" in bound["text"]
    rep = drift.check(lab_session, "router", f"{TAG}r")
    assert rep["chain"][0]["text"].startswith(f"router {TAG}r") and \
        [c["link"] for c in rep["chain"]] == ["router", "nat"]
    rep = drift.check(lab_session, "network", f"{TAG}-none")
    assert rep["chain"] == [] and drift.check_text(rep) == [f"no network named {TAG}-none"]


def test_a_silent_host_makes_the_check_partial_not_wrong(world, lab_inventory):
    """A hypervisor whose sshd accepts and never speaks (a frozen sshd, on loopback): the check
    returns within its bound, says the host did not answer, and concludes no VM is gone (the
    ghost LSP's VM could live there)."""
    import socket
    from virtdeck.backends.session import Session
    from virtdeck.config.inventory import HostConfig
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    silent = HostConfig(name="hvsilent", address="127.0.0.1", port=srv.getsockname()[1], user="root")
    inv = replace(lab_inventory, hosts=lab_inventory.hosts + (silent,))
    try:
        with Session(inv, connect_timeout=30) as s:
            t0 = time.monotonic()
            facts = drift.gather(s, wait=4)
            took = time.monotonic() - t0
        print(f"check with a silent host: {took:.1f} s")
        assert took < 15 and "hvsilent" in facts.unreachable
        assert not [f for f in drift.findings(facts) if f.kind == "lsp-orphan"]
    finally:
        srv.close()


def test_a_host_in_maintenance_makes_the_check_partial(world, lab_inventory):
    """hv2 disabled (maintenance: not connected to, not searched): the ghost LSP's VM could be
    there, so no LSP is called an orphan; the report says why."""
    from virtdeck.backends.session import Session
    hosts = tuple(replace(h, enabled=False, disabled_reason="test") if h.name == "hv2" else h
                  for h in lab_inventory.hosts)
    with Session(replace(lab_inventory, hosts=hosts)) as s:
        rep = drift.check(s)
    assert rep["partial"] and rep["disabled"] == ["hv2"]
    assert not [f for f in rep["_findings"] if f.kind == "lsp-orphan"]
    assert "partial: hv2 is disabled (maintenance, not searched); no VM is judged gone" in drift.check_text(rep)


def test_fix_removes_these_orphans_and_nothing_else(world, lab, lab_session, monkeypatch, tmp_path):
    monkeypatch.setenv("VIRTDECK_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    r = world["report"]
    report = dict(r, _findings=mine(r))       # only this module's findings: the lab is shared
    res = drift.fix(lab_session, report)
    assert sorted(res["removed"]) == sorted(f.subject for f in mine(r) if f.safe) and not res["failed"]
    lsps = set(nbctl(lab, "--bare", "--columns=name", "list", "Logical_Switch_Port").split())
    assert world["ghost_lsp"] not in lsps
    assert {world["ok_lsp"], world["bound_lsp"], world["phys_lsp"]} <= lsps   # not orphans: kept
    nat = nbctl(lab, "--bare", "--columns=nat", "list", "Logical_Router", world["router"].router)
    assert nat == ""
    after = drift.check(lab_session)
    assert sorted(f.kind for f in mine(after)) == ["binding-elsewhere", "dhcp-cidr", "nic-no-lsp",
                                                   "physnet-missing"]
    for host, name in world["vms"]:
        conn = lab_session.libvirt(host)
        assert conn.lookupByName(name) is not None
        assert storage.find_volume(conn, host, POOL, f"{name}.qcow2") is not None


def test_an_inventory_that_forgets_a_host_leaves_its_chassis_unclaimed(lab_inventory):
    """A second inventory without hv2 (hv2 still runs ovn-controller): its chassis is unclaimed."""
    from virtdeck.backends.session import Session
    inv = replace(lab_inventory, hosts=tuple(h for h in lab_inventory.hosts if h.name != "hv2"))
    with Session(inv) as s:
        rep = drift.check(s, "host", "hv2")
    (f,) = rep["_findings"]
    assert f.kind == "chassis-unclaimed" and f.subject == "chassis hv2" and not f.safe
    assert "virtdeck host add" in f.fix and "172.16.0.12" in f.fix
