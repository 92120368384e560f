"""OVN NB as production runs it, against REAL ovsdb-server processes on 127.0.0.1: a 3-member
raft cluster (fixtures nb_cluster / start_nb_cluster) reached over tcp: and ssl: with a PKI made
in tmp (fixture nb_pki), through the inventory and Session as the CLI and console use them.

Figures (``-s`` shows them): leader killed -> client saw the drop -> back on the new leader ->
next network committed, in ms. They are printed, not asserted.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import Counter

import pytest

from virtdeck.backends.ovn import connection as ovn_nb
from virtdeck.backends.ovn.names import EXT_NETWORK, EXT_ROLE, EXT_TENANT, ROLE_DHCP, switch_name
from virtdeck.backends.ovn.remote import SslFiles
from virtdeck.backends.session import Session
from virtdeck.config import inventory as inv_mod
from virtdeck.console.errors import ConfigError, HostError, ValidationError
from virtdeck.console.services import network as netsvc
from virtdeck.console.services.network import NetworkRequest
from fixtures_real import start_nb_cluster, wait_for

# this module's PKI (nb_pki) must not meet the lab's in python-ovs' one-set-per-process SSL state
pytestmark = pytest.mark.usefixtures("ssl_isolated")


def write_inventory(path, connection: str, **ovn) -> inv_mod.Inventory:
    """An inventory file with just an [ovn] section, loaded the way the CLI loads it."""
    lines = [f'connection = "{connection}"'] + [f'{k} = "{v}"' for k, v in ovn.items()]
    path.write_text("[ovn]\n" + "\n".join(lines) + "\n")
    return inv_mod.load(path)


def ssl_keys(pki, **override) -> dict:
    keys = {"private_key": pki.client_key, "certificate": pki.client_cert, "ca_cert": pki.ca_cert}
    keys.update(override)
    return {k: str(v) for k, v in keys.items()}


# ------------------------------------------------------------------------------ SSL and keys


def test_inventory_checks_ssl_files_at_load(tmp_path, nb_pki):
    inv = write_inventory(tmp_path / "ok.toml", "ssl:127.0.0.1:1,ssl:127.0.0.1:2", **ssl_keys(nb_pki))
    assert inv.ovn.uses_ssl and inv.ovn.ca_cert == str(nb_pki.ca_cert)

    gone = tmp_path / "no-such-key.pem"
    with pytest.raises(ConfigError) as e:
        write_inventory(tmp_path / "a.toml", "ssl:127.0.0.1:1", **ssl_keys(nb_pki, private_key=gone))
    assert "ovn.private_key" in str(e.value) and str(gone) in str(e.value)
    assert "\n" not in str(e.value)

    with pytest.raises(ConfigError) as e:
        write_inventory(tmp_path / "b.toml", "ssl:127.0.0.1:1", ca_cert=nb_pki.ca_cert)
    assert "ovn.private_key, ovn.certificate is not set" in str(e.value)


def test_ssl_cluster_connect_write_and_member(tmp_path, nb_pki, audit_log):
    cluster = start_nb_cluster(tmp_path / "cluster", pki=nb_pki)
    try:
        inv = write_inventory(tmp_path / "inv.toml", cluster.remote, **ssl_keys(nb_pki))
        with Session(inv, connect_timeout=5) as session:
            api = session.nb()
            # a writer settles on the leader
            assert ovn_nb.member(api) == cluster.members[cluster.leader()]
            info = netsvc.create_network(session, NetworkRequest("t1", "web", cidr="10.9.0.0/24"))
            assert info.switch == switch_name("t1", "web") and info.dhcp_options
        # a reader may stay on any member and sees the committed row
        reader = ovn_nb.connect(cluster.remote, timeout=5, leader_only=False,
                                ssl=SslFiles(**ssl_keys(nb_pki)))
        try:
            assert ovn_nb.member(reader) in cluster.members
            wait_for(lambda: [n.name for n in ovn_nb.read(reader).networks] == [info.switch], 5,
                     "the network on the reader")
        finally:
            ovn_nb.close(reader)
    finally:
        cluster.stop()


def test_ssl_wrong_ca_or_missing_key_is_one_sentence(tmp_path, nb_pki):
    cluster = start_nb_cluster(tmp_path / "cluster", pki=nb_pki)
    try:
        t0 = time.monotonic()
        with pytest.raises(HostError) as e:
            ovn_nb.connect(cluster.remote, timeout=5,
                           ssl=SslFiles(**ssl_keys(nb_pki, ca_cert=nb_pki.other_ca)))
        msg = str(e.value)
        assert "ovn.ca_cert" in msg and str(nb_pki.other_ca) in msg and "\n" not in msg, msg
        assert time.monotonic() - t0 < 4   # the handshake says so; no waiting for a timeout

        gone = tmp_path / "gone-key.pem"
        with pytest.raises(HostError) as e:
            ovn_nb.connect(cluster.remote, timeout=5, ssl=SslFiles(**ssl_keys(nb_pki, private_key=gone)))
        assert str(e.value) == f"ovn.private_key: no such file {gone}"

        with pytest.raises(HostError) as e:     # ssl: members but no files at all
            ovn_nb.connect(cluster.remote, timeout=5)
        assert "ovn.private_key, ovn.certificate and ovn.ca_cert" in str(e.value)
    finally:
        cluster.stop()


# ------------------------------------------------------------------------------ failover


def _audit_network_rows(api, tenant: str) -> tuple[Counter, Counter, list[str]]:
    """(switches per name, DHCP rows per network, problems) for ``tenant`` in ``api``'s replica."""
    switches = Counter(r.name for r in api.tables["Logical_Switch"].rows.values()
                       if r.external_ids.get(EXT_TENANT) == tenant)
    dhcp = Counter(r.external_ids.get(EXT_NETWORK) for r in api.tables["DHCP_Options"].rows.values()
                   if r.external_ids.get(EXT_TENANT) == tenant
                   and r.external_ids.get(EXT_ROLE) == ROLE_DHCP)
    problems = []
    for r in api.tables["DHCP_Options"].rows.values():
        if r.external_ids.get(EXT_TENANT) == tenant and not r.options.get("router"):
            problems.append(f"DHCP row of {r.external_ids.get(EXT_NETWORK)} without options")
    for r in api.tables["Logical_Switch"].rows.values():
        if r.external_ids.get(EXT_TENANT) == tenant and not r.other_config.get("subnet"):
            problems.append(f"switch {r.name} without subnet")
    return switches, dhcp, problems


def test_leader_killed_during_network_create_loop(nb_cluster, tmp_path, audit_log):
    """Kill the NB leader (SIGKILL, by the PID we started) while network create runs in a loop
    through the real service: the loop carries on through the new leader without help, every
    network exists exactly once with its one DHCP row, and nothing is half-made."""
    n, kill_at = 24, 6
    inv = write_inventory(tmp_path / "inv.toml", nb_cluster.remote)
    events: queue.Queue = queue.Queue()
    outcomes: dict[str, str] = {}
    messages: list[str] = []
    with Session(inv, connect_timeout=10) as session:
        api = session.nb()
        first_member = ovn_nb.member(api)
        ovn_nb.set_sink(api, lambda ch: events.put((time.monotonic(), ch.connected,
                                                    ovn_nb.member(api))))
        leader = nb_cluster.leader()
        assert nb_cluster.members[leader] == first_member
        t_kill: list[float] = []

        def killer(start: threading.Event) -> None:
            start.wait(30)
            time.sleep(0.003)          # let the create reach its commit
            t_kill.append(time.monotonic())
            nb_cluster.kill(leader)

        go = threading.Event()
        th = threading.Thread(target=killer, args=(go,), daemon=True)
        th.start()
        spans: list[tuple[float, float]] = []     # (start, end) of each create, monotonic
        for i in range(n):
            name = f"net{i:02d}"
            req = NetworkRequest("ha", name, cidr=f"10.{100 + i}.0.0/24")
            if i == kill_at:
                go.set()
            started = time.monotonic()
            for attempt in range(3):    # what an operator (or a script) would do: run it again
                try:
                    netsvc.create_network(session, req)
                    outcomes[name] = "created" if attempt == 0 else "created on retry"
                    break
                except HostError as exc:
                    messages.append(str(exc))
                except ValidationError as exc:
                    # the earlier attempt's reply was lost but it committed: said, not repeated
                    assert attempt > 0 and "already has a network" in str(exc), exc
                    outcomes[name] = "already there"
                    break
            spans.append((started, time.monotonic()))
        th.join(5)
        new_member = ovn_nb.member(api)

        switches, dhcp, problems = _audit_network_rows(api, "ha")

    # read it back through a fresh connection to another member, not our replica
    check = ovn_nb.connect(nb_cluster.remote.replace(nb_cluster.members[leader] + ",", "")
                           .replace("," + nb_cluster.members[leader], ""), timeout=10)
    try:
        fresh_switches, fresh_dhcp, fresh_problems = _audit_network_rows(check, "ha")
    finally:
        ovn_nb.close(check)

    names = [f"net{i:02d}" for i in range(n)]
    assert set(outcomes) == set(names), (outcomes, messages)
    for sw, dh, pr in ((switches, dhcp, problems), (fresh_switches, fresh_dhcp, fresh_problems)):
        assert sw == Counter({switch_name("ha", x): 1 for x in names}), sw
        assert dh == Counter({x: 1 for x in names}), dh
        assert pr == []
    assert all("\n" not in m for m in messages), messages
    assert new_member != first_member and new_member in nb_cluster.members

    # figures: kill -> drop seen -> connected to the new leader -> next create committed
    drops = []
    while not events.empty():
        drops.append(events.get_nowait())
    t0 = t_kill[0]
    lost = next((t for t, up, _m in drops if t >= t0 and not up), None)
    last_down = max((t for t, up, _m in drops if t >= t0 and not up), default=t0)
    back = next(((t, m) for t, up, m in drops if t > last_down and up), None)  # for good
    resumed = min((end for start, end in spans if end > (back[0] if back else t0)), default=None)
    longest = max(end - start for start, end in spans)
    fmt = lambda t: f"{(t - t0) * 1000:.0f} ms" if t is not None else "n/a"  # noqa: E731
    print(f"\nleader {first_member} killed (SIGKILL); drop seen +{fmt(lost)}; settled on "
          f"{back[1] if back else '?'} +{fmt(back[0] if back else None)}; first create committed "
          f"after that +{fmt(resumed)}; longest create {longest * 1000:.0f} ms; outcomes "
          f"{dict(Counter(outcomes.values()))}; CLI messages: {messages or 'none'}")


def test_timed_out_create_is_reread_before_its_retry(nb_server, audit_log):
    """A transaction that timed out may still commit: freeze the server (SIGSTOP, by our PID)
    so the first create times out with its transaction already sent, retry at once (the retry's
    validation still sees no network), then let the server go on. The first commits; the retry's
    transaction re-reads the replica first, finds the switch and is not made: one switch, one
    DHCP row (without the re-read, ls_add may_exist would pass and a second DHCP row appear)."""
    api = ovn_nb.connect(nb_server.unix, timeout=1.5)
    req = NetworkRequest("rt", "web", cidr="10.7.0.0/24")
    try:
        os.kill(nb_server.pid, 19)                     # SIGSTOP
        try:
            with pytest.raises(HostError) as e:
                netsvc.create_network(api, req)
            assert "create network rt/web failed" in str(e.value) and "\n" not in str(e.value)
            threading.Timer(0.5, os.kill, (nb_server.pid, 18)).start()   # SIGCONT
            info = netsvc.create_network(api, req)     # the retry, queued behind the first
        finally:
            os.kill(nb_server.pid, 18)
        assert info.switch == switch_name("rt", "web") and info.dhcp_options
        switches, dhcp, problems = _audit_network_rows(api, "rt")
        assert (switches, dhcp, problems) == (Counter({info.switch: 1}), Counter({"web": 1}), [])
    finally:
        ovn_nb.close(api)


def test_console_live_view_through_leader_kill(nb_cluster, tmp_path, audit_log):
    """The console as it runs: a LiveModel reads through Session.nb_reader (any member) while the
    services write through the same Session's leader-only nb(). Kill the LEADER (SIGKILL, by the
    PID we started) and keep creating networks: the live view shows every one, names a live
    member (``via``), and never needs the operator. Figures: kill -> first live-view change seen
    (a stale mark, or none when the reader sat on a follower) -> a network committed after the
    kill shown live."""
    from virtdeck.console.live import LiveModel
    from virtdeck.console.model import NB_UP
    from virtdeck.screens import views

    inv = write_inventory(tmp_path / "inv.toml", nb_cluster.remote)
    live = LiveModel(inv, nb_reset_after=5.0).start()
    try:
        assert live.wait_ready(15)
        session = live.session
        netsvc.create_network(session, NetworkRequest("lv", "before", cidr="10.50.0.0/24"))
        wait_for(lambda: live.snapshot().nb.member in nb_cluster.members and
                 [n.label for n in live.snapshot().networks] == ["before"], 10, "NB up")
        reader_on = live.snapshot().nb.member
        leader = nb_cluster.leader()
        assert ovn_nb.member(session.nb()) == nb_cluster.members[leader]   # the writer

        states: list[tuple[float, str, str | None]] = []
        stop_watch = threading.Event()

        def watch() -> None:        # what the status line would show, every 10 ms
            while not stop_watch.is_set():
                nb = live.snapshot().nb
                if not states or states[-1][1:] != (nb.state, nb.member):
                    states.append((time.monotonic(), nb.state, nb.member))
                time.sleep(0.01)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()

        t_kill = time.monotonic()
        nb_cluster.kill(leader)
        created: list[str] = []
        for i in range(4):          # as the TUI's create form would, one after another
            name = f"after{i}"
            for _attempt in range(3):
                try:
                    netsvc.create_network(session, NetworkRequest("lv", name,
                                                                  cidr=f"10.{51 + i}.0.0/24"))
                    break
                except HostError:
                    continue
                except ValidationError as exc:      # committed, reply lost: said, not repeated
                    assert "already has a network" in str(exc), exc
                    break
            created.append(name)
        t_committed = time.monotonic()
        want = sorted(["before", *created])
        wait_for(lambda: sorted(n.label for n in live.snapshot().networks) == want, 15,
                 "the networks created after the kill in the live view")
        t_shown = time.monotonic()
        stop_watch.set()
        watcher.join(2)

        cloud = live.snapshot()
        assert cloud.nb.state == NB_UP and cloud.nb.member in nb_cluster.members
        assert cloud.nb.member != nb_cluster.members[leader]
        assert f"via {cloud.nb.member}" in views.status_line(cloud)
        assert sorted(n.label for n in cloud.networks) == want     # each exactly once

        changed = next((t for t, st, m in states if t >= t_kill and (st != NB_UP or m != reader_on)),
                       None)
        fmt = lambda t: f"+{(t - t_kill) * 1000:.0f} ms" if t is not None else "none"  # noqa: E731
        print(f"\nleader {nb_cluster.members[leader]} killed; live view read from {reader_on} "
              f"({'the leader' if reader_on == nb_cluster.members[leader] else 'a follower'}); "
              f"live view changed {fmt(changed)}; 4 creates committed {fmt(t_committed)}; "
              f"all shown live {fmt(t_shown)}; status path "
              f"{[(st, m) for t, st, m in states if t >= t_kill] or 'unchanged'}")
    finally:
        live.stop()
