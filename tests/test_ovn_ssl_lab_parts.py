"""Parts of the cluster-ssl lab flavour that need no lab (backends/lab/central.py, pki.py, the
inventory `lab up` writes), against real tools: ``cluster/status`` of a real 3-member raft
cluster (fixtures_real, tcp on 127.0.0.1), and a PKI made with the real ovs-pki in tmp. The
whole flavour runs in a sandbox lab in tests/lab/test_ssl_cluster.py."""

from __future__ import annotations

import subprocess

import pytest
import tomli_w

from virtdeck.backends.lab import central, pki
from virtdeck.backends.lab import topology as topo
from virtdeck.config import inventory as inv_mod


def test_cluster_status_of_every_member_names_the_same_leader(nb_cluster):
    seen = [central.parse_cluster_status(nb_cluster.status(i)) for i in range(3)]
    lead = seen[nb_cluster.leader()]
    assert lead["role"] == "leader" and lead["leader"] == lead["address"]
    assert lead["address"].startswith("tcp:127.0.0.1:")
    for st in seen:
        assert st["status"] == "cluster member" and len(st["servers"]) == 3
        assert st["leader"] == lead["address"], seen
        assert st["address"] in st["servers"]


def test_cluster_status_during_an_election_has_no_leader():
    text = ("1a2b\nName: OVN_Northbound\nAddress: ssl:192.168.100.20:6643\nStatus: cluster member\n"
            "Role: candidate\nTerm: 3\nLeader: unknown\nServers:\n"
            "    1a2b (1a2b at ssl:192.168.100.20:6643) (self)\n"
            "    3c4d (3c4d at ssl:192.168.100.30:6643)\n")
    st = central.parse_cluster_status(text)
    assert st == {"role": "candidate", "status": "cluster member",
                  "address": "ssl:192.168.100.20:6643", "leader": None,
                  "servers": ["ssl:192.168.100.20:6643", "ssl:192.168.100.30:6643"]}


def test_remotes_per_flavour():
    assert topo.nb_remote(topo.OVN_STANDALONE) == "tcp:192.168.100.10:6641"
    assert topo.sb_remote(topo.OVN_CLUSTER_SSL) == (
        "ssl:192.168.100.10:6642,ssl:192.168.100.20:6642,ssl:192.168.100.30:6642")
    assert topo.DEFAULT_OVN == topo.OVN_CLUSTER_SSL     # what production runs; the suite runs on it


def _verify(ca, cert) -> str:
    p = subprocess.run(["openssl", "verify", "-CAfile", str(ca), str(cert)],
                       capture_output=True, text=True)
    return p.stdout.strip() + p.stderr.strip()


def _issuer(cert) -> str:
    return subprocess.run(["openssl", "x509", "-noout", "-issuer", "-in", str(cert)],
                          capture_output=True, text=True, check=True).stdout


def test_ovs_pki_makes_each_pair_once_and_the_lab_inventory_loads(tmp_path, monkeypatch):
    monkeypatch.setenv("VIRTDECK_LAB_DIR", str(tmp_path / "lab"))
    pairs = pki.ensure(["central-1", "operator", "hv1"])
    for name, p in pairs.items():
        assert p.key.read_text().startswith("-----BEGIN") and "OK" in _verify(pki.ca_bundle(), p.cert)
    # servers by ovs-pki's controllerca, clients by its switchca
    assert "controllerca" in _issuer(pairs["central-1"].cert)
    assert "switchca" in _issuer(pairs["operator"].cert)
    before = {n: p.cert.stat().st_mtime_ns for n, p in pairs.items()}
    pairs["hv1"].cert.unlink()                          # half-made: made again, others kept
    again = pki.ensure(["central-1", "operator", "hv1"])
    assert again["central-1"].cert.stat().st_mtime_ns == before["central-1"]
    assert again["operator"].cert.stat().st_mtime_ns == before["operator"]
    assert "OK" in _verify(pki.ca_bundle(), again["hv1"].cert)

    from virtdeck.backends.lab.up import _ovn_inventory
    path = tmp_path / "lab" / "inventory.toml"
    path.write_text(tomli_w.dumps({"ovn": _ovn_inventory(topo.OVN_CLUSTER_SSL)}))
    ovn = inv_mod.load(path).ovn
    assert ovn.connection == topo.nb_remote(topo.OVN_CLUSTER_SSL) and ovn.uses_ssl
    assert ovn.sb_connection == topo.sb_remote(topo.OVN_CLUSTER_SSL)
    assert ovn.private_key == str(pki.pair("operator").key) and ovn.ca_cert == str(pki.ca_bundle())
    assert _ovn_inventory(topo.OVN_STANDALONE) == {
        "via_host": "central", "nb_socket": topo.NB_SOCKET, "sb_socket": topo.SB_SOCKET}


def test_flavour_of_a_lab_recorded_before_flavours_is_standalone(tmp_path, monkeypatch):
    monkeypatch.setenv("VIRTDECK_LAB_DIR", str(tmp_path / "lab"))
    assert central.flavour() == topo.OVN_STANDALONE
    assert central.ctl_argv("nb")[:2] == ["ovn-nbctl", "--db=tcp:192.168.100.10:6641"]
    # the other doors to it follow the flavour: unix sockets in central, daemons' PID files
    assert central.local_remote("nb") == "unix:/run/ovn/ovnnb_db.sock"
    assert central.pidfiles("northd") == ["/run/ovn/ovn-northd.pid"]
    cl = topo.OVN_CLUSTER_SSL
    assert central.local_remote("sb", cl) == ",".join(f"unix:/run/ovn/ovnsb_db-{i}.sock" for i in (1, 2, 3))
    assert central.pidfiles("nb", cl) == [f"/run/ovn/ovnnb_db-{i}.pid" for i in (1, 2, 3)]
    assert central.pidfiles("northd", cl) == [f"/run/ovn/ovn-northd-{i}.pid" for i in (1, 2, 3)]
    assert central.pids("nb") == []  # no lab in this lab dir
    from virtdeck.backends.lab.state import LabError
    from virtdeck.backends.lab.up import _ovn_flavour
    assert _ovn_flavour({}, None) == topo.DEFAULT_OVN
    assert _ovn_flavour({"ovn": topo.OVN_CLUSTER_SSL}, None) == topo.OVN_CLUSTER_SSL
    with pytest.raises(LabError, match="--ovn must be one of standalone, cluster-ssl"):
        _ovn_flavour({}, "raft")
