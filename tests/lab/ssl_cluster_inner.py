"""Run by tests/lab/test_ssl_cluster.py inside a sandbox (not collected: no test_ prefix): a lab
with the cluster-ssl OVN flavour (3 NB + 3 SB raft members, ovn-northd on each, a PKI made with
ovs-pki, ovn-controller on ssl:) and one hypervisor, no guests. Tests run in file order and
share the lab (module fixture); the last one kills the NB leader and then repairs the lab.

Figures (``-s``): `lab up` time, and for the leader kill: kill -> the console saw it (status
bar) -> the console showed a network committed after the kill (live updates back), seconds.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from virtdeck.backends.lab import central, pki
from virtdeck.backends.lab import topology as topo
from virtdeck.backends.lab.state import lab_dir
from virtdeck.backends.ovn import connection as ovn_nb
from virtdeck.backends.ovn.names import switch_name
from virtdeck.backends.ovn.remote import SslFiles
from virtdeck.backends.session import Session
from virtdeck.config import inventory as inv_mod
from virtdeck.console.errors import ConfigError, HostError

pytestmark = pytest.mark.lab
VIRTDECK = str(Path(sys.executable).with_name("virtdeck"))
TENANT = "demo"


@pytest.fixture(scope="module")
def cluster_lab():
    """Bring the cluster-ssl lab up (1 hypervisor) in this sandbox; take it down afterwards and
    check nothing of it is left."""
    from virtdeck.backends.lab.down import down
    from virtdeck.backends.lab.up import up
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    t0 = time.monotonic()
    st = up(1, log=lambda m: print("  up:", m), owner=os.getpid(), ovn=topo.OVN_CLUSTER_SSL)
    print(f"\ncluster-ssl lab up (1 hypervisor) in {time.monotonic() - t0:.1f} s")
    assert st.ready
    yield lab_dir() / "inventory.toml"
    left = down(log=lambda m: None)
    assert left == [], left


def _inv(path: Path, **ovn) -> inv_mod.Inventory:
    """The lab's inventory with [ovn] keys replaced, written next to ``path``'s copy."""
    import tomllib

    import tomli_w
    data = tomllib.loads((lab_dir() / "inventory.toml").read_text())
    data["ovn"].update(ovn)
    path.write_text(tomli_w.dumps(data))
    return inv_mod.load(path)


def test_status_says_which_member_leads(cluster_lab):
    from virtdeck.backends.lab.status import check
    st = check()
    assert st.ready, st.lines()
    names = {c.name: c for c in st.checks}
    for kind in ("NB", "SB"):
        c = names[f"OVN {kind} raft"]
        assert c.ok and "3/3 members" in c.detail and "leader central-" in c.detail, c
    assert names["ovn-northd"].ok
    assert "NB leader central-" in st.lines()[-1] and "SB leader central-" in st.lines()[-1]
    p = subprocess.run([VIRTDECK, "lab", "status"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "OVN NB raft: leader central-" in p.stdout, p.stdout + p.stderr
    p = subprocess.run([VIRTDECK, "--json", "lab", "status"], capture_output=True, text=True, timeout=60)
    ovn = __import__("json").loads(p.stdout)["ovn"]
    assert ovn["flavour"] == "cluster-ssl" and ovn["nb_leader"][0] in (1, 2, 3), ovn
    assert ovn["nb_leader"][1] == topo.CENTRAL_MEMBERS[ovn["nb_leader"][0] - 1] and ovn["northd"]
    # ovn-controller reached the SB over ssl: (the chassis is there) and uses the lab PKI
    from virtdeck.backends.lab.hosts import run_in
    ovs = run_in("hv1", ["ovs-vsctl", "get", "Open_vSwitch", ".", "external_ids:ovn-remote"])
    assert ovs.stdout.strip().strip('"') == topo.sb_remote(topo.OVN_CLUSTER_SSL)


def test_inventory_names_ssl_members_and_lab_pki(cluster_lab):
    inv = inv_mod.load(cluster_lab)
    assert inv.ovn.connection == topo.nb_remote(topo.OVN_CLUSTER_SSL)
    assert inv.ovn.sb_connection == topo.sb_remote(topo.OVN_CLUSTER_SSL)
    assert inv.ovn.ca_cert == str(pki.ca_bundle()) and inv.ovn.via_host is None
    assert Path(inv.ovn.private_key).read_text().startswith("-----BEGIN")


def test_connect_over_ssl_with_the_lab_pki(cluster_lab):
    inv = inv_mod.load(cluster_lab)
    with Session(inv, connect_timeout=10) as s:
        writer, reader = s.nb(), s.nb_reader()
        lead = central.leaders()["nb"]
        assert ovn_nb.member(writer) == f"ssl:{lead[1]}:{topo.NB_PORT}"       # writer on the leader
        assert ovn_nb.member(reader) in topo.nb_remote(topo.OVN_CLUSTER_SSL).split(",")
    # the SB over the same files: virtdeck's SB reader through the inventory's sb_connection
    from virtdeck.backends.ovn import southbound
    with Session(inv, connect_timeout=10) as s:
        sb = southbound.snapshot(s)
    assert [(c.name, c.host, c.encaps) for c in sb.chassis] == [
        ("hv1", "hv1", (("geneve", topo.hypervisor(1).tunnel_ip),))], sb.chassis
    assert sb.member in topo.sb_remote(topo.OVN_CLUSTER_SSL).split(","), sb.member
    assert sb.member_list and sorted(sb.members) == sorted(topo.sb_remote(topo.OVN_CLUSTER_SSL).split(","))
    # and ovn-sbctl as an operator runs it (central.ctl_argv: the operator's certificate)
    p = subprocess.run([*central.ctl_argv("sb"), "--bare", "--columns=name", "list", "Chassis"],
                       capture_output=True, text=True, timeout=30)
    assert p.stdout.split() == ["hv1"], p.stderr
    # and not without a client certificate: ovsdb-server requires one signed by the lab CA
    assert '"result"' in _echo(with_cert=True)
    assert _echo(with_cert=False) == ""


def _echo(with_cert: bool) -> str:
    """One JSON-RPC echo to NB member 1 over TLS (the lab CA trusted), with or without the
    operator's client certificate; returns the reply ("" when the server refused us)."""
    import socket
    import ssl
    ctx = ssl.create_default_context(cafile=str(pki.ca_bundle()))
    ctx.check_hostname = False
    if with_cert:
        op = pki.pair("operator")
        ctx.load_cert_chain(str(op.cert), str(op.key))
    try:
        with socket.create_connection((topo.CENTRAL_ADDRESS, topo.NB_PORT), timeout=5) as raw:
            with ctx.wrap_socket(raw) as tls:
                tls.sendall(b'{"method":"echo","params":[],"id":0}')
                return tls.recv(200).decode()
    except (ssl.SSLError, ConnectionError, socket.timeout):
        return ""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def test_wrong_ca_or_missing_key_is_one_sentence_naming_the_file(cluster_lab, tmp_path):
    # another CA, and a client certificate it signed (the lab's servers do not trust it)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "other-ca-key.pem", "-out", "other-ca.pem", "-days", "1",
             "-subj", "/CN=not the lab CA", cwd=tmp_path)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "stranger-key.pem", "-out", "stranger.csr", "-subj", "/CN=stranger", cwd=tmp_path)
    _openssl("x509", "-req", "-in", "stranger.csr", "-CA", "other-ca.pem", "-CAkey",
             "other-ca-key.pem", "-CAcreateserial", "-out", "stranger-cert.pem", "-days", "1", cwd=tmp_path)

    wrong_ca = _inv(tmp_path / "wrong-ca.toml", ca_cert="other-ca.pem")   # relative: next to it
    with Session(wrong_ca, connect_timeout=5) as s, pytest.raises(HostError) as e:
        s.nb()
    msg = str(e.value)
    assert "ovn.ca_cert" in msg and str(tmp_path / "other-ca.pem") in msg and "\n" not in msg, msg

    stranger = _inv(tmp_path / "stranger.toml", private_key="stranger-key.pem",
                    certificate="stranger-cert.pem")
    with Session(stranger, connect_timeout=5) as s, pytest.raises(HostError) as e:
        s.nb()
    msg = str(e.value)
    assert "ovn.certificate" in msg and str(tmp_path / "stranger-cert.pem") in msg, msg

    with pytest.raises(ConfigError) as e:                 # missing key: refused at load
        _inv(tmp_path / "nokey.toml", private_key="gone-key.pem")
    msg = str(e.value)
    assert f"ovn.private_key: no such file {tmp_path / 'gone-key.pem'}" in msg and "\n" not in msg

    # a key deleted after load: the connect names it (SslFiles.check)
    key = tmp_path / "late-key.pem"
    key.write_bytes(pki.pair("operator").key.read_bytes())
    late = _inv(tmp_path / "late.toml", private_key=str(key))
    key.unlink()
    with pytest.raises(HostError) as e:
        ovn_nb.connect(late.ovn.connection, timeout=5,
                       ssl=SslFiles(late.ovn.private_key, late.ovn.certificate, late.ovn.ca_cert))
    assert str(e.value) == f"ovn.private_key: no such file {key}"


def _create(config: Path, name: str, cidr: str) -> tuple[str, list[str]]:
    """`virtdeck network create` as an operator runs it, again on failure (3 tries): returns
    (outcome, the failures' one-line messages)."""
    errors = []
    for attempt in range(3):
        p = subprocess.run([VIRTDECK, "--config", str(config), "network", "create", "--tenant",
                            TENANT, "--cidr", cidr, name], capture_output=True, text=True, timeout=120)
        if p.returncode == 0:
            return ("created" if attempt == 0 else "created on retry"), errors
        err = p.stderr.strip()
        if attempt > 0 and "already has a network" in err:   # the earlier try committed
            return "already there", errors
        errors.append(err)
    return "failed", errors


def _rows(api) -> tuple[Counter, Counter, list[str]]:
    """(switches per name, DHCP rows per network, half-made rows) of the sslc-* networks."""
    from virtdeck.backends.ovn.names import EXT_NETWORK, EXT_ROLE, EXT_TENANT, ROLE_DHCP
    sw = Counter(r.name for r in api.tables["Logical_Switch"].rows.values()
                 if r.external_ids.get(EXT_TENANT) == TENANT and "sslc-" in r.name)
    dhcp = Counter(r.external_ids.get(EXT_NETWORK) for r in api.tables["DHCP_Options"].rows.values()
                   if r.external_ids.get(EXT_TENANT) == TENANT
                   and r.external_ids.get(EXT_ROLE) == ROLE_DHCP
                   and (r.external_ids.get(EXT_NETWORK) or "").startswith("sslc-"))
    bad = [f"switch {r.name} without subnet" for r in api.tables["Logical_Switch"].rows.values()
           if "sslc-" in r.name and not r.other_config.get("subnet")]
    bad += [f"DHCP of {r.external_ids.get(EXT_NETWORK)} without router"
            for r in api.tables["DHCP_Options"].rows.values()
            if (r.external_ids.get(EXT_NETWORK) or "").startswith("sslc-") and not r.options.get("router")]
    return sw, dhcp, bad


def _lead_on(i: int, tries: int = 6) -> int:
    """Make NB member ``i`` the leader: the current leader hands leadership over
    (``cluster/failure-test transfer-leadership``, an election follows) to an up-to-date member.
    Which one is not ours to say, so the third member is made to lag first: it is stopped
    (SIGSTOP, a process of this sandbox's lab) while one NB write commits, and continued after
    the transfer. Returns how many transfers it took (measured: 1-2, 0.5-6 s)."""
    from virtdeck.backends.lab.hosts import host_path
    for n in range(tries + 1):
        lead = central.leaders()["nb"]
        assert lead, "no NB leader"
        if lead[0] == i:
            return n
        third = ({1, 2, 3} - {i, lead[0]}).pop()
        pid = central.member_pid("nb", third)
        os.kill(pid, signal.SIGSTOP)
        try:
            subprocess.run([*central.ctl_argv("nb", timeout=10), "set", "NB_Global", ".",
                            f"external_ids:sslc-transfer={n}"], capture_output=True, timeout=20,
                           check=True)
            ctl = host_path("central", central.member_path("nb", lead[0], "ctl"))
            subprocess.run(["ovs-appctl", "-t", str(ctl), "cluster/failure-test",
                            "transfer-leadership"], capture_output=True, timeout=10)
            # OVS 3.1 may still pick the stopped member: it takes over once continued, and
            # the next round tries again
            end = time.monotonic() + 3
            while time.monotonic() < end:
                st = central.member_status("nb", i)
                if st.get("leader") not in (None, lead[0]):
                    break
                time.sleep(0.05)
        finally:
            os.kill(pid, signal.SIGCONT)
    raise AssertionError(f"member {i} did not become the NB leader in {tries} transfers")


async def test_nb_leader_killed_under_console_and_cli_create_loop(cluster_lab):
    """The console open (Pilot, 80x24) and `virtdeck network create` running in a loop: SIGKILL
    the NB leader by its PID file. Every network of the loop exists exactly once with its one
    DHCP row, none half-made; every CLI failure was one line; the console shows networks
    committed after the kill (live updates back) and ``via`` a live member."""
    from virtdeck.console.app import VirtdeckApp
    from virtdeck.console.live import LiveModel
    from virtdeck.console.model import NB_UP

    inv = inv_mod.load(cluster_lab)
    n, kill_after = 10, 3
    names = [f"sslc-{i:02d}" for i in range(n)]
    outcomes: dict[str, str] = {}
    failures: list[str] = []
    done = threading.Event()
    created_at: dict[str, float] = {}
    spans: list[tuple[float, float]] = []
    kill = threading.Event()
    plan: dict[str, float] = {}

    def loop() -> None:
        for i, name in enumerate(names):
            started = time.monotonic()
            if i == kill_after:
                # aim the kill at this create's commit: ~85% into a typical create (the CLI
                # starts, connects over SSL to the leader, validates, then commits)
                avg = sum(e - s for s, e in spans) / len(spans)
                plan["kill_at"] = started + 0.85 * avg
                kill.set()
            outcome, errs = _create(cluster_lab, name, f"10.{200 + i}.0.0/24")
            outcomes[name] = outcome
            failures.extend(errs)
            created_at[name] = time.monotonic()
            spans.append((started, created_at[name]))
        done.set()

    live = LiveModel(inv, nb_reset_after=5.0).start()
    app = VirtdeckApp(live, inventory=inv)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await asyncio.to_thread(live.wait_ready, 30)
            members = topo.nb_remote(topo.OVN_CLUSTER_SSL).split(",")
            # at 80 columns the status bar names a member by its address (screens/views.py)
            addr = {m: m.split(":")[1] for m in members}

            def status() -> str:
                return str(app.screen.query_one("#status").render())

            t_end = time.monotonic() + 20
            while not any(f"via {addr[m]}" in status() for m in members) and time.monotonic() < t_end:
                await pilot.pause(0.05)
            reader_on = next((m for m in members if f"via {addr[m]}" in status()), None)
            assert reader_on, status()
            # the case that tests the console: it reads from the member that dies. Hand the
            # leadership over (a real raft election, ovsdb-server's own failure-test command)
            # until the leader is the member the console reads from.
            want = members.index(reader_on) + 1
            moved = await asyncio.to_thread(_lead_on, want)
            print(f"\nNB leadership moved to the console's member central-{want} in {moved} transfer(s)")
            th = threading.Thread(target=loop, daemon=True)
            th.start()
            await asyncio.to_thread(kill.wait, 120)
            await asyncio.sleep(max(0.0, plan["kill_at"] - time.monotonic()))
            lead = central.leaders()["nb"]
            assert lead, "no NB leader before the kill"
            leader_member = f"ssl:{lead[1]}:{topo.NB_PORT}"
            pid = central.member_pid("nb", lead[0])
            t_kill = time.monotonic()
            os.kill(pid, signal.SIGKILL)

            seen: dict[str, float] = {}
            after_kill: set[str] = set()
            while not done.is_set() or "resume" not in seen:
                now = time.monotonic()
                nb = app.cloud.nb
                text = status()
                if "detect" not in seen and (nb.state != NB_UP or f"via {addr[reader_on]}" not in text):
                    seen["detect"] = now
                if ("back" not in seen and nb.state == NB_UP and " via " in text
                        and f"via {addr[reader_on]}" not in text):
                    seen["back"] = now          # the status bar: up again, via another member
                shown = {x.label for x in app.cloud.networks}
                after_kill = {x for x, t in created_at.items() if t > t_kill}
                if "resume" not in seen and nb.state == NB_UP and after_kill & shown:
                    seen["resume"] = now
                if now - t_kill > 180:
                    break
                await pilot.pause(0.02)
            th.join(5)
            # the console settles on every network of the loop, each once
            t_end = time.monotonic() + 20
            while time.monotonic() < t_end:
                labels = [x.label for x in app.cloud.networks if x.label.startswith("sslc-")]
                if sorted(labels) == names:
                    break
                await pilot.pause(0.1)
            text = status()
            labels = sorted(x.label for x in app.cloud.networks if x.label.startswith("sslc-"))
    finally:
        live.stop()

    assert set(outcomes) == set(names) and "failed" not in outcomes.values(), (outcomes, failures)
    assert all("\n" not in f and f for f in failures), failures
    assert labels == names, labels
    assert "NB up" in text and f"via {addr[leader_member]}" not in text, text
    assert any(f"via {addr[m]}" in text for m in members if m != leader_member), text
    # read back through a fresh connection to the survivors, not the console's replica
    survivors = ",".join(m for m in members if m != leader_member)
    check = ovn_nb.connect(survivors, timeout=15, leader_only=False,
                           ssl=SslFiles(inv.ovn.private_key, inv.ovn.certificate, inv.ovn.ca_cert))
    try:
        sw, dhcp, bad = _rows(check)
    finally:
        ovn_nb.close(check)
    assert sw == Counter({switch_name(TENANT, x): 1 for x in names}), sw
    assert dhcp == Counter({x: 1 for x in names}), dhcp
    assert bad == [], bad
    new = central.leaders()["nb"]
    assert new and new[0] != lead[0]

    in_flight = [f"{s - t_kill:+.2f}..{e - t_kill:+.2f} s" for s, e in spans if s <= t_kill <= e]
    fmt = lambda t: f"+{t - t_kill:.2f} s" if t is not None else "n/a"  # noqa: E731
    d, b, r = seen.get("detect"), seen.get("back"), seen.get("resume")
    print(f"\nNB leader central-{lead[0]} ({leader_member}) killed by PID {pid}; console read via "
          f"{reader_on} ({'the leader' if reader_on == leader_member else 'a follower'}); "
          f"console saw it {fmt(d)}; up again via another member {fmt(b)} (detect->resume "
          f"{f'{b - d:.2f} s' if d and b else 'n/a'}); first network created after the kill shown "
          f"{fmt(r)}; "
          f"new leader central-{new[0]}; CLI create in flight at the kill: {in_flight or 'none'}; "
          f"CLI create times {min(e - s for s, e in spans):.2f}..{max(e - s for s, e in spans):.2f} s; "
          f"CLI outcomes {dict(Counter(outcomes.values()))}; "
          f"CLI failures: {failures or 'none'}")


def test_lab_up_repairs_the_killed_member_and_status_names_the_leader(cluster_lab):
    from virtdeck.backends.lab.up import up
    st = up(1, log=lambda m: None, owner=os.getpid())
    assert st.ready, st.lines()
    ld = central.leaders()
    assert ld["members"] == {"nb": 3, "sb": 3} and ld["nb"] and ld["sb"]
