"""Which SB member the console reads from (issue 12: the status line's ``SB via``), against REAL
ovsdb-server processes on 127.0.0.1 (fixtures_real's 3-member SB raft cluster, a standalone NB).

- The status line says ``SB via MEMBER`` only when the SB connection is a member list, like the
  NB's ``via``; a single server or a forwarded socket shows none (the snapshots stay as they are).
- At 80 columns the members shorten (what tells each apart in its list, then the SB's address
  as what differs from the NB's) so the line keeps within the width; wider, they are whole.
- The live model and the running console (Pilot, 80x24) show the SB member; SIGKILL it (by the
  PID the fixture started) and they name another member by themselves. The detect->resume time
  is printed (``-s``), not asserted.
"""

from __future__ import annotations

import time

from rich.text import Text

from virtdeck.backends.ovn.southbound import SbData
from virtdeck.config.inventory import Inventory, OvnConfig
from virtdeck.console.live import LiveModel
from virtdeck.console.model import NB_UP, Cloud, NbStatus
from virtdeck.screens import views
from fixtures_real import wait_for
from live_helpers import status_until

LAB_NB = [f"ssl:192.168.100.{a}:6641" for a in (10, 20, 30)]
LAB_SB = tuple(f"ssl:192.168.100.{a}:6642" for a in (10, 20, 30))


def plain(line: str) -> str:
    return Text.from_markup(line).plain


def test_status_line_says_sb_via_only_for_a_member_list():
    sb = SbData(member=LAB_SB[1], members=LAB_SB)
    assert plain(views.status_line(Cloud(sb=sb))).endswith(f"NB connecting · SB via {LAB_SB[1]}")
    # one server, a socket forwarded over SSH (random path), disconnected, not read: none
    for data in (SbData(member="tcp:10.0.0.1:6642", members=("tcp:10.0.0.1:6642",)),
                 SbData(member="unix:/tmp/vd-x1/ovnsb", members=("unix:/tmp/vd-x1/ovnsb",)),
                 SbData(member=None, members=LAB_SB), None):
        line = views.status_line(Cloud(sb=data))
        assert "SB" not in line and Cloud(sb=data).sb_member is None, line


def test_status_line_keeps_within_the_width_by_shortening_members():
    nb = NbStatus(NB_UP, ",".join(LAB_NB), member=LAB_NB[1])
    cloud = Cloud(nb=nb, sb=SbData(member=LAB_SB[0], members=LAB_SB))
    full = plain(views.status_line(cloud))
    assert full.endswith(f"NB up via {LAB_NB[1]} · SB via {LAB_SB[0]}")
    assert plain(views.status_line(cloud, 200)) == full
    # 80 columns less the padding: the NB member by its address, the SB's by what differs
    line = plain(views.status_line(cloud, 78))
    assert line.endswith("NB up via 192.168.100.20 · SB via .10") and len(line) <= 78, line
    # narrower still: no "via"; then no members at all (a filter after the line matters more)
    assert plain(views.status_line(cloud, 64)).endswith("NB up 192.168.100.20 · SB .10")
    assert plain(views.status_line(cloud, 55)).endswith("running · NB up")
    # members on one machine differ by port: the port is what is shown
    local = tuple(f"tcp:127.0.0.1:{p}" for p in (41001, 41002, 41003))
    cloud = Cloud(nb=NbStatus(NB_UP, "unix:/x"), sb=SbData(member=local[2], members=local))
    assert plain(views.status_line(cloud, 56)).endswith("NB up · SB via :41003")
    # the NB's line without an SB member is as before, whatever the width
    only_nb = Cloud(nb=nb)
    assert views.status_line(only_nb, 200) == views.status_line(only_nb)


def test_live_model_shows_the_sb_member_and_moves_on_when_it_dies(nb_server, sb_cluster):
    """The SB member the live view reads from is killed (SIGKILL, a crash): ``Cloud.sb_member``
    names another member by itself (the SB reader is not leader-only: no election needed)."""
    inv = Inventory(ovn=OvnConfig(connection=nb_server.unix, sb_connection=sb_cluster.remote))
    live = LiveModel(inv).start()
    try:
        assert live.wait_ready(15)
        wait_for(lambda: live.snapshot().sb_member in sb_cluster.members, 15, "SB read")
        first = live.snapshot().sb_member
        assert sorted(live.snapshot().sb.members) == sorted(sb_cluster.members)
        assert f"SB via {first}" in views.status_line(live.snapshot())
        t_kill = time.monotonic()
        sb_cluster.kill(sb_cluster.members.index(first))
        seen: dict[str, float] = {}

        def moved() -> bool:
            m = live.snapshot().sb_member
            if "detect" not in seen and m != first:
                seen["detect"] = time.monotonic()
            if m not in (None, first):
                seen["resume"] = time.monotonic()
                return True
            return False

        wait_for(moved, 20, "the SB reader on another member")
        cloud = live.snapshot()
        assert cloud.sb_member in sb_cluster.members and f"SB via {cloud.sb_member}" in views.status_line(cloud)
        print(f"\nSB member {first} killed; console saw it +{(seen['detect'] - t_kill) * 1000:.0f} ms; "
              f"SB via {cloud.sb_member} +{(seen['resume'] - t_kill) * 1000:.0f} ms")
    finally:
        live.stop()


async def test_console_status_bar_names_both_members_within_80_columns(nb_cluster, sb_cluster):
    """The running console (Pilot, 80x24) with NB and SB member lists: its status bar names the
    member of each (by port: the members share 127.0.0.1) within 80 columns and, after the SB
    member is killed, another SB member, without a key press."""
    from virtdeck.console.app import VirtdeckApp

    inv = Inventory(ovn=OvnConfig(connection=nb_cluster.remote, sb_connection=sb_cluster.remote))
    live = LiveModel(inv, nb_reset_after=5.0).start()
    port = {m: ":" + m.rsplit(":", 1)[1] for m in sb_cluster.members}

    try:
        app = VirtdeckApp(live, inv)
        async with app.run_test(size=(80, 24)):
            text = await status_until(app, lambda t: "NB up via" in t and "SB via" in t, 20)
            assert len(text.rstrip()) <= 78, text   # 80 less #status's padding
            first = next((m for m in sb_cluster.members if f"SB via {port[m]}" in text), None)
            assert first is not None and any(f"NB up via :{m.rsplit(':', 1)[1]}" in text
                                             for m in nb_cluster.members), text
            sb_cluster.kill(sb_cluster.members.index(first))
            text = await status_until(app, lambda t: "SB via" in t and f"SB via {port[first]}" not in t, 20)
            assert any(f"SB via {port[m]}" in text for m in sb_cluster.members if m != first), text
    finally:
        live.stop()
