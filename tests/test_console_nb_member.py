"""Which NB member the console talks to (issue 12 part 1) and how its live view reads through a
raft election (part 2), against REAL ovsdb-server processes on 127.0.0.1 (fixtures_real's
3-member cluster and a standalone server).

- The status line says ``via MEMBER`` only for a member list; a single server (a forwarded unix
  socket's random path) shows none, so the fixed-size snapshots stay as they are.
- Session.nb_reader() is not leader-only for a member list (its own connection; the writer
  stays on the leader) and is Session.nb() itself for one server.
- The LiveModel shows the member it reads from; SIGKILL that member (by the PID the fixture
  started) and the status names another member within a bounded wait, with the data intact.
  The detect->resume time is printed (``-s``), not asserted. The running console (Pilot)
  shows the same in its status bar.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import replace

from virtdeck.backends.ovn import connection as ovn_nb
from virtdeck.backends.session import Session
from virtdeck.config.inventory import Inventory, OvnConfig
from virtdeck.console.live import LiveModel
from virtdeck.console.model import NB_UP, Cloud, NbStatus
from virtdeck.screens import views
from fixtures_real import wait_for
from live_helpers import status_until


def test_status_line_says_via_only_for_a_member_list():
    cluster = NbStatus(NB_UP, "tcp:10.0.0.1:6641,tcp:10.0.0.2:6641,tcp:10.0.0.3:6641",
                       member="tcp:10.0.0.2:6641")
    assert "NB [green]up[/] via tcp:10.0.0.2:6641" in views.status_line(Cloud(nb=cluster))
    ssl = replace(cluster, remote="ssl:a:6641, ssl:b:6641", member="ssl:b:6641")
    assert "via ssl:b:6641" in views.status_line(Cloud(nb=ssl))
    # one server, or a socket forwarded over SSH (random path): no member shown
    for remote, member in (("tcp:10.0.0.1:6641", "tcp:10.0.0.1:6641"),
                           ("central:/run/ovn/ovnnb_db.sock", "unix:/tmp/vd-x1/ovnnb")):
        line = views.status_line(Cloud(nb=NbStatus(NB_UP, remote, member=member)))
        assert "via" not in line and line.endswith("NB [green]up[/]"), line
    # stale: the member is not known (the worker clears it), nothing claimed
    stale = replace(cluster, state="stale", member=None)
    assert "via" not in views.status_line(Cloud(nb=stale))


def test_nb_reader_is_the_writer_for_one_server(nb_server):
    with Session(Inventory(ovn=OvnConfig(connection=nb_server.unix)), connect_timeout=5) as s:
        assert s.nb_reader() is s.nb()
        s.reset_nb_reader()                       # the old behaviour: the one connection goes
        assert s._nb is None


def test_nb_reader_reads_from_any_member_writer_keeps_the_leader(nb_cluster):
    with Session(Inventory(ovn=OvnConfig(connection=nb_cluster.remote)), connect_timeout=10) as s:
        writer, reader = s.nb(), s.nb_reader()
        assert reader is not writer and s.nb_reader() is reader
        assert ovn_nb.member(writer) == nb_cluster.members[nb_cluster.leader()]
        assert ovn_nb.member(reader) in nb_cluster.members
        assert not reader.idl.leader_only and writer.idl.leader_only
        s.reset_nb_reader()                       # the reader goes, the writer stays
        assert s._nb is writer and s._nb_reader is None
        assert s.nb_reader() is not reader


def test_live_model_shows_member_and_moves_on_when_it_dies(nb_cluster):
    """The member the live view reads from is killed (SIGKILL, a crash): the status goes to
    another member by itself, the rows stay, and a row added afterwards arrives."""
    leader = nb_cluster.members[nb_cluster.leader()]

    def nbctl(*args: str) -> bool:
        # ovn-nbctl tries one member of a list and gives up if it refuses or there is no leader
        # yet (an election after the leader died): name the live ones, and the caller retries
        alive = ",".join(m for m, pid in zip(nb_cluster.members, nb_cluster.pids) if pid)
        return subprocess.run(["ovn-nbctl", f"--db={alive}", "--timeout=10", *args],
                              capture_output=True).returncode == 0

    assert nbctl("ls-add", "kept")
    live = LiveModel(Inventory(ovn=OvnConfig(connection=nb_cluster.remote)),
                     nb_reset_after=5.0).start()
    try:
        assert live.wait_ready(15)
        wait_for(lambda: live.snapshot().nb.member in nb_cluster.members
                 and [n.name for n in live.snapshot().networks] == ["kept"], 10, "NB up")
        first = live.snapshot().nb.member
        assert f"via {first}" in views.status_line(live.snapshot())
        i = nb_cluster.members.index(first)

        t_kill = time.monotonic()
        nb_cluster.kill(i)
        seen: dict[str, float] = {}

        def moved() -> bool:
            nb = live.snapshot().nb
            if "detect" not in seen and (nb.state != NB_UP or nb.member != first):
                seen["detect"] = time.monotonic()
            if nb.state == NB_UP and nb.member not in (None, first):
                seen["resume"] = time.monotonic()
                return True
            return False

        wait_for(moved, 15, "the live view on another member")
        cloud = live.snapshot()
        assert cloud.nb.member in nb_cluster.members and cloud.nb.member != first
        assert f"via {cloud.nb.member}" in views.status_line(cloud)
        assert [n.name for n in cloud.networks] == ["kept"]          # nothing lost

        wait_for(lambda: nbctl("--may-exist", "ls-add", "after"), 15,
                 "ovn-nbctl through the survivors' leader")
        wait_for(lambda: [n.name for n in live.snapshot().networks] == ["after", "kept"], 10,
                 "a row added after the failover")
        t_row = time.monotonic()
        fmt = lambda t: f"{(t - t_kill) * 1000:.0f} ms"  # noqa: E731
        print(f"\nNB member {first} killed ({'the leader' if first == leader else 'a follower'}); "
              f"console saw it +{fmt(seen['detect'])}; live via {cloud.nb.member} "
              f"+{fmt(seen['resume'])}; a new row shown +{fmt(t_row)}")
    finally:
        live.stop()                               # closes the session it opened


async def test_console_status_bar_follows_the_member(nb_cluster):
    """The running console (Pilot, 80x24): its status bar says ``via`` the member read from and,
    after that member is killed, ``via`` another one, without a key press."""
    from virtdeck.console.app import VirtdeckApp

    inv = Inventory(ovn=OvnConfig(connection=nb_cluster.remote))
    live = LiveModel(inv, nb_reset_after=5.0).start()

    try:
        app = VirtdeckApp(live, inv)
        async with app.run_test(size=(80, 24)):
            text = await status_until(app, lambda t: " via " in t, 15)
            first = next((m for m in nb_cluster.members if f"via {m}" in text), None)
            assert first is not None and "NB up" in text, text
            nb_cluster.kill(nb_cluster.members.index(first))
            text = await status_until(
                app, lambda t: " via " in t and f"via {first}" not in t and "NB up" in t, 15)
            assert any(f"via {m}" in text for m in nb_cluster.members if m != first), text
    finally:
        live.stop()
