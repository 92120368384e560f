"""Console conventions an operator knows from k9s/virsh (issue 10, the TUI half), with Pilot:
the full details view on enter, sortable columns (keys and header click), click to select,
the read-only badge and footer, "no match for /re/" apart from an empty panel, the palette's
verbs and marks, and a first screen that stays at the top while hosts' rows arrive in any
order. Rendering only: a FixedModel's Cloud (tests/test_vm_actions_tui.py runs the verbs
against real libvirt/OVN); snapshots of the same screens are in test_tui_snapshots.py."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from virtdeck.console.app import FixedModel, VirtdeckApp
from virtdeck.console.model import Cloud, Host, Vm
from virtdeck.screens.details import DetailsScreen, vm_events
from virtdeck.screens.main import MainScreen
from virtdeck.screens.table import natural_key
from console_fixtures import sample_cloud


@pytest.fixture(autouse=True)
def audit_log(tmp_path, monkeypatch):
    """A private audit trail: two records about web-1, one about another VM, one torn line."""
    path = tmp_path / "audit.jsonl"
    recs = [{"time": "2026-11-28T10:00:00.000+00:00", "operator": "ann@jump", "verb": "vm.create",
             "target": "vm acme/web-1", "outcome": "ok"},
            {"time": "2026-11-28T10:05:00.000+00:00", "operator": "bob@jump", "verb": "vm.start",
             "target": "vm db-1", "outcome": "ok"},
            {"time": "2026-11-28T10:10:00.000+00:00", "operator": "bob@jump", "verb": "vm.reboot",
             "target": "vm web-1", "outcome": "failed: domain is not running"}]
    path.write_text("{torn\n" + "".join(json.dumps(r) + "\n" for r in recs))
    monkeypatch.setenv("VIRTDECK_AUDIT_LOG", str(path))
    return path


def app_of(cloud=None, **kw) -> VirtdeckApp:
    app = VirtdeckApp(FixedModel(cloud or sample_cloud()), **kw)
    app.animation_level = "none"
    return app


def names(app) -> list[str]:
    return [r.cells[0] for r in app.screen.table().rows]


def body(app) -> str:
    return str(app.screen.query_one("#details-body").render())


async def wait_events(pilot, app) -> None:
    for _ in range(100):
        if isinstance(app.screen, DetailsScreen) and app.screen.events is not None:
            break
        await pilot.pause(0.02)
    await pilot.pause()


# -- 1. enter: the full details view -----------------------------------------------------------


async def test_enter_opens_vm_details_scrollable_by_keys_and_escape_returns():
    app = app_of()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2", "enter")
        await wait_events(pilot, app)
        assert isinstance(app.screen, DetailsScreen) and app.screen.key.startswith("vm:hv1:")
        text = body(app)
        for needle in ("VM web-1 on hv1", "vda: disk /var/lib/libvirt/images/web-1.qcow2",
                       "52:54:00:00:00:01 (vnet0)", "→ LSP web-1-eth0", "→ switch web (overlay, 10.10.0.0/24)",
                       "→ IPs 10.10.0.11", "seed: web-1-seed", "template: debian12"):
            assert needle in text, needle
        # the events: this VM's audit records only (by name, with or without its tenant), oldest first
        events = text.split("Events")[1]
        assert "vm.create ok ann@jump" in events and "vm.reboot failed: domain is not running" in events
        assert "vm.start" not in events
        assert events.index("vm.create") < events.index("vm.reboot")
        # longer than 80x24: the keys scroll it
        box = app.screen.query_one("#details-full")
        assert box.max_scroll_y > 0 and box.scroll_y == 0
        await pilot.press("j", "j")
        await pilot.pause()
        assert box.scroll_y == 2
        await pilot.press("end")
        await pilot.pause()
        assert box.scroll_y == box.max_scroll_y
        await pilot.press("g")
        await pilot.pause()
        assert box.scroll_y == 0
        await pilot.press("pagedown")
        await pilot.pause()
        assert box.scroll_y > 2
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen) and app.screen.panel == "vms"


def test_vm_chain_ends_at_the_chassis_the_southbound_binds():
    from virtdeck.backends.ovn.southbound import Binding, Chassis, SbData
    from virtdeck.screens.details import full_details
    from console_fixtures import P1, P2
    sb = SbData(chassis=(Chassis("hv1", "hv1", (("geneve", "172.16.0.11"),), host="hv1"),),
                bindings=(Binding(P1, "", "hv1", True, "vd.acme.web"), Binding(P2, "", None, None, "vd.acme.db")))
    cloud = replace(sample_cloud(), sb=sb)
    web, db = cloud.vms[0], cloud.vms[1]
    text = "\n".join(full_details(cloud, f"vm:{web.host}:{web.uuid}"))
    assert "→ IPs 10.10.0.11\n    → bound on chassis hv1 (host hv1)" in text
    assert "→ not bound" in "\n".join(full_details(cloud, f"vm:{db.host}:{db.uuid}"))
    assert "bound on" not in "\n".join(full_details(sample_cloud(), f"vm:{web.host}:{web.uuid}"))  # SB not read


async def test_host_details_list_capacity_mappings_and_vms():
    app = app_of()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("enter")
        await pilot.pause()
        text = body(app)
        assert "host hv1 (192.168.100.11)" in text
        assert "allocated vCPU: 6 of 32 (cores × 4)" in text
        assert "bridge mappings: physnet1:br-phys" in text
        assert "VMs (1 running of 2)" in text
        assert "db-1" in text and "web-1" in text and "build" not in text
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


async def test_details_follow_changes_and_say_when_the_row_is_gone():
    app = app_of()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2", "enter")
        await wait_events(pilot, app)
        cloud = app.cloud
        web = cloud.vms[0]
        app.source.set(replace(cloud, vms=(replace(web, state="paused"),) + cloud.vms[1:]))
        await pilot.pause()
        assert "VM web-1 on hv1  paused" in body(app)
        app.source.set(replace(cloud, vms=cloud.vms[1:]))
        await pilot.pause()
        assert body(app).startswith("gone: this row is no longer in the cloud")
        assert "VM web-1 on hv1" in body(app)     # the last known facts stay readable


def test_vm_events_reads_the_tail_and_tolerates_a_missing_trail(audit_log, tmp_path):
    assert [r["verb"] for r in vm_events("web-1")] == ["vm.create", "vm.reboot"]
    assert [r["verb"] for r in vm_events("web-1", limit=1)] == ["vm.reboot"]
    assert vm_events("web-1", path=tmp_path / "none.jsonl") == []


# -- 3. sorting, click ---------------------------------------------------------------------------


def test_natural_key_orders_numbers_as_numbers_and_blanks_last():
    cells = ["web-10", "web-2", "", "Web-1", "-", "2048", "512", "24100/32000", "9000/16000"]
    assert sorted(cells, key=natural_key) == ["512", "2048", "9000/16000", "24100/32000",
                                              "Web-1", "web-2", "web-10", "", "-"]


async def test_sort_keys_cycle_columns_reverse_and_show_in_the_header():
    app = app_of()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        table = app.screen.table()
        assert names(app) == ["web-1", "db-1", "build", "legacy"]       # host, then as given
        await pilot.press("greater_than_sign")                           # Name ascending
        await pilot.pause()
        assert names(app) == ["build", "db-1", "legacy", "web-1"]
        assert table.render_line(0).text.startswith("Name▲")
        await pilot.press("tilde")                                       # Name descending
        await pilot.pause()
        assert names(app) == ["web-1", "legacy", "db-1", "build"]
        assert table.render_line(0).text.startswith("Name▼")
        await pilot.press("greater_than_sign", "greater_than_sign")      # Host, then State
        await pilot.pause()
        assert table.sort_column == 2 and "State▼" in table.render_line(0).text
        await pilot.press("greater_than_sign")                           # vCPU, descending kept
        await pilot.pause()
        assert [r.cells[3] for r in table.rows] == ["4", "2", "1", "1"]
        await pilot.press("less_than_sign", "less_than_sign", "less_than_sign", "less_than_sign")
        await pilot.pause()
        assert table.sort_column is None and names(app) == ["web-1", "db-1", "build", "legacy"]
        assert "▲" not in table.render_line(0).text and "▼" not in table.render_line(0).text


async def test_header_click_sorts_and_row_click_selects_then_opens():
    app = app_of()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        table = app.screen.table()
        ram_x = sum(w + 1 for w in table._widths[:4]) + 1           # inside the RAM header
        assert table.column_at(ram_x) == 4
        await pilot.click("#table-vms", offset=(ram_x, 0))
        await pilot.pause()
        assert table.sort_column == 4 and not table.sort_reverse
        assert [r.cells[4] for r in table.rows] == ["512", "1024", "2048", "8192"]
        await pilot.click("#table-vms", offset=(ram_x, 0))                # again: reversed
        await pilot.pause()
        assert [r.cells[4] for r in table.rows] == ["8192", "2048", "1024", "512"]
        await pilot.click("#table-vms", offset=(2, 3))                    # the third row
        await pilot.pause()
        assert table.cursor == 2 and table.cursor_key == app.screen.table().rows[2].key
        assert "build on hv2" in str(app.screen.query_one("#detail-vms").render())
        await pilot.click("#table-vms", offset=(2, 3))                    # the highlighted one: open
        await pilot.pause()
        assert isinstance(app.screen, DetailsScreen) and app.screen.key == table.rows[2].key


# -- 4. read-only, empty and no-match ----------------------------------------------------------------


def footer_keys(app) -> list[str]:
    from textual.widgets._footer import FooterKey
    return [k.key for k in app.screen.query(FooterKey)]


async def test_readonly_badge_footer_without_mutating_keys_and_one_sentence_refusal():
    app = app_of(readonly=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        assert str(app.screen.query_one("#status").render()).startswith(" READ-ONLY  hosts")
        keys = footer_keys(app)
        assert "c" not in keys and {"1", "2", "slash", "q"} <= set(keys)
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert [str(n.message) for n in app._notifications][-1] == \
            "read-only console: the VM create wizard is off"
    writable = app_of()
    async with writable.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        assert "c" in footer_keys(writable)
        assert "READ-ONLY" not in str(writable.screen.query_one("#status").render())


async def test_readonly_help_dims_the_keys_that_change_the_cloud():
    from virtdeck.screens.dialogs import HelpScreen

    def help_lines(app) -> list[str]:
        return str(app.screen.query_one("#help Static").render()).splitlines()

    for readonly in (True, False):
        app = app_of(readonly=readonly)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("question_mark")
            await pilot.pause()
            assert isinstance(app.screen, HelpScreen)
            lines = help_lines(app)
            create = next(ln for ln in lines if "create" in ln.lower() and ln.strip().startswith("c "))
            listing = next(ln for ln in lines if ln.strip().startswith("/"))
            assert "(read-only)" not in listing
            if readonly:
                assert "READ-ONLY" in lines[1] and "refused" in lines[1]
                assert create.endswith("(read-only)")
                spans = app.screen.query_one("#help Static").render().spans
                assert any("dim" in str(sp.style) for sp in spans)
            else:
                assert "(read-only)" not in "\n".join(lines) and "READ-ONLY" not in lines[1]

async def test_readonly_templates_panel_hides_add_and_delete():
    from wizard_helpers import INV
    app = app_of(readonly=True, inventory=INV)
    async with app.run_test(size=(100, 24)) as pilot:
        await pilot.press("5")
        await pilot.pause(0.3)
        app.screen.query_one("#tpl-table").focus()
        await pilot.pause()
        keys = footer_keys(app)
        assert "a" not in keys and "ctrl+d" not in keys and "g" in keys
        await pilot.press("ctrl+d")
        await pilot.pause()
        assert [str(n.message) for n in app._notifications][-1:] == ["read-only console: templates cannot be deleted"]


async def test_no_match_is_not_an_empty_cloud():
    app = app_of()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2", "slash", *"nosuch", "enter")
        await pilot.pause()
        table = app.screen.table()
        assert table.rows == () and table.render_line(1).text.startswith("no match for /nosuch/")
        await pilot.press("escape")
        await pilot.pause()
        assert len(table.rows) == 4
    empty = app_of(replace(sample_cloud(), vms=()))
    async with empty.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        assert empty.screen.table().render_line(1).text.startswith("no VMs yet — c creates one")


# -- 2. palette: verbs and marks -----------------------------------------------------------------------


async def palette_texts(pilot, app, query: str) -> list[str]:
    from textual.command import CommandList
    await pilot.press("colon")
    await pilot.pause()
    await pilot.press(*query)
    await pilot.pause(0.4)
    hits = app.screen.query_one(CommandList)
    texts = [str(hits.get_option_at_index(i).prompt) for i in range(hits.option_count)]
    await pilot.press("escape")
    await pilot.pause()
    return texts


async def test_palette_finds_verbs_by_their_word():
    app = app_of()
    async with app.run_test(size=(100, 30)) as pilot:
        texts = " | ".join(await palette_texts(pilot, app, "start"))
        assert "vm start (s)" in texts
        texts = " | ".join(await palette_texts(pilot, app, "delete"))
        for verb in ("vm delete (ctrl+d / delete)", "network delete", "router delete", "template delete"):
            assert verb in texts, verb
        assert "mark all shown VMs" in " | ".join(await palette_texts(pilot, app, "mark all"))


async def test_mark_all_marks_what_the_filter_left():
    from console_fixtures import palette_pick
    app = app_of()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2", "slash", *"hv1", "enter")
        await pilot.pause()
        await pilot.press("ctrl+a")
        await pilot.pause()
        assert app.screen.vm_marks == {r.key for r in app.screen.table().rows} and len(app.screen.vm_marks) == 2
        await pilot.press("escape", "x")            # filter off, marks cleared
        await pilot.pause()
        assert not app.screen.vm_marks
        await pilot.press("1")
        await palette_pick(pilot, "mark all shown")  # from another panel: goes to the VMs panel
        await pilot.pause(0.2)
        assert app.screen.panel == "vms" and len(app.screen.vm_marks) == 4
        assert names(app)[0].startswith("● ")


# -- 5. the first screen stays at the top while hosts answer ------------------------------------------


def vms_of(host: str, n: int) -> tuple[Vm, ...]:
    return tuple(Vm(host, f"{host}-vm{i:03d}", f"{host}-{i:032d}", state="shutoff", vcpus=1, memory_mib=512)
                 for i in range(n))


def cloud_with(*hosts: str, n: int = 100) -> Cloud:
    """Hosts hv1..hv3, of which ``hosts`` have answered; VMs in the live model's order (host,
    then name)."""
    vms = tuple(v for h in sorted(hosts) for v in vms_of(h, n))
    return Cloud(hosts=tuple(Host(h, f"192.0.2.{i}", state="up" if h in hosts else "connecting")
                             for i, h in enumerate(("hv1", "hv2", "hv3"), 1)), vms=vms, generation=len(vms))


async def test_first_screen_stays_at_the_top_while_hosts_rows_arrive_in_any_order():
    app = app_of(Cloud(), panel="vms")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.screen.table()
        for answered in (("hv3",), ("hv3", "hv1"), ("hv3", "hv1", "hv2")):   # hv3 answers first
            app.source.set(cloud_with(*answered))
            await pilot.pause()
            assert table.cursor == 0 and table.scroll_offset.y == 0, answered
            assert table.cursor_key == table.rows[0].key
        assert table.cursor_key.startswith("vm:hv1:") and len(table.rows) == 300
        assert "hv1-vm000 on hv1" in str(app.screen.query_one("#detail-vms").render())


async def test_after_the_operator_moved_the_cursor_follows_its_row():
    app = app_of(cloud_with("hv2"), panel="vms")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        table = app.screen.table()
        await pilot.press("down", "down")
        key = table.cursor_key
        assert key == table.rows[2].key and key.startswith("vm:hv2:")
        app.source.set(cloud_with("hv1", "hv2"))        # 100 rows arrive above it
        await pilot.pause()
        assert table.cursor_key == key and table.cursor == 102


# -- the read verbs in the console: audit, tenant show, host show ---------------------------------------


async def test_audit_view_from_the_palette_lists_filters_and_opens_records():
    from console_fixtures import palette_pick
    from virtdeck.screens.audit import AuditScreen
    from virtdeck.screens.vm_dialogs import DetailsDialog
    app = app_of()
    async with app.run_test(size=(80, 24)) as pilot:
        await palette_pick(pilot, "audit")
        for _ in range(100):
            if isinstance(app.screen, AuditScreen) and app.screen.records is not None:
                break
            await pilot.pause(0.02)
        screen = app.screen
        assert isinstance(screen, AuditScreen)
        table = screen.query_one("#audit-table")
        assert [r.cells[2] for r in table.rows] == ["vm.reboot", "vm.start", "vm.create"]   # newest first
        assert table.rows[0].cells[0] == "2026-11-28 10:10:00"
        assert "3 records" in str(screen.query_one("#audit-status").render())
        await pilot.press("slash", *"ann", "enter")
        await pilot.pause()
        assert [r.cells[2] for r in table.rows] == ["vm.create"]
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, DetailsDialog) and '"target": "vm acme/web-1"' in "\n".join(app.screen.lines)
        await pilot.press("escape", "escape")        # the record, then the filter
        await pilot.pause()
        assert app.screen is screen and len(table.rows) == 3
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


async def test_tenant_show_and_host_show_from_the_palette_open_the_details_view():
    from console_fixtures import palette_pick
    app = app_of()
    async with app.run_test(size=(80, 24)) as pilot:
        await palette_pick(pilot, "tenant show")
        await pilot.pause(0.2)
        assert isinstance(app.screen, DetailsScreen) and app.screen.key == "tenant:acme"
        assert "VMs (2)" in body(app) and "db-1" in body(app)
        await pilot.press("escape")
        await palette_pick(pilot, "host show")
        await pilot.pause(0.2)
        assert isinstance(app.screen, DetailsScreen) and app.screen.key == "host:hv1"


# -- 80 columns: the name, state and IPs stay whole; the wide figures wait for a wider table -----------


@pytest.mark.parametrize("width", [80, 160])
async def test_narrow_table_hides_wide_columns_and_keeps_names_and_ips_whole(width):
    cloud = sample_cloud()
    vm = replace(cloud.vms[0], name="vmops-tmux", uuid="u-long")
    app = app_of(replace(cloud, vms=cloud.vms + (vm,)))
    async with app.run_test(size=(width, 24)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        table = app.screen.table()
        header = table.render_line(0).text
        assert ("Net rx/" in header) is (width == 160)
        lines = [table.render_line(y).text for y in range(1, 6)]
        assert any(line.startswith("vmops-tmux ") for line in lines)
        assert any("192.168.50.20" in line for line in lines) and "running" in lines[0]
        await pilot.press(*["greater_than_sign"] * 12)   # the sort skips hidden columns
        await pilot.pause()
        assert table.sort_column in (None, *table._shown_columns)
