"""CloudTable's incremental refill: a refill with the same row keys in the same order replaces
only the rows whose cells changed (a metrics snapshot moves a few running VMs' figures among
thousands of rows) instead of rebuilding the table. What it must keep: the drawn cells, the
sort order (ties in the given order), column widths, the cursor on its row, marks, the filter.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from textual.app import App

from virtdeck.console.app import FixedModel, VirtdeckApp
from virtdeck.screens.table import CloudTable, Column, Row
from virtdeck.screens.views import VM_COLUMNS
from virtdeck.screens.vm_actions import MARK
from console_fixtures import sample_cloud

COLUMNS = (Column("name", "Name", 4, 12), Column("cpu", "CPU%", 4, 6, right=True),
           Column("state", "State", 5, 11))


class One(App):
    def compose(self):
        yield CloudTable(COLUMNS)


def full_fill(table: CloudTable, rows: list[Row]) -> None:
    """What the table would show after a rebuild from scratch with the same sort."""
    table._given = tuple(rows)
    table._sorted_for = (None, (), ())
    table._sort_keys = (None, {})
    table._lens = {}
    table._place_rows()


cells = st.sampled_from(["", "-", "0", "3", "12", "99", "100", "7.5", "busy"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(cells, cells), min_size=1, max_size=30),
       st.lists(st.tuples(st.integers(0, 29), cells, cells), max_size=8),
       st.sampled_from([(None, False), (0, False), (1, False), (1, True), (2, True)]))
def test_incremental_refill_matches_a_rebuild(first, changes, sort):
    async def run():
        app = One()
        async with app.run_test(size=(60, 20)):
            a, b = app.query_one(CloudTable), CloudTable(COLUMNS)
            await app.mount(b)
            rows = [Row(f"k{i}", (f"vm-{i}", cpu, state)) for i, (cpu, state) in enumerate(first)]
            for t in (a, b):
                t.sort_by(*sort)
                t.set_rows(rows)
            a.select_key(rows[len(rows) // 2].key)
            for i, cpu, state in changes:
                i %= len(rows)
                rows[i] = Row(rows[i].key, (rows[i].cells[0], cpu, state))
            calls = []
            orig = a._place_rows
            a._place_rows = lambda: (calls.append(1), orig())
            key = a.cursor_key
            a.set_rows(list(rows))
            assert calls == [], "same keys in the same order: no rebuild"
            full_fill(b, list(rows))
            assert [r.key for r in a.rows] == [r.key for r in b.rows]
            assert [r.cells for r in a.rows] == [r.cells for r in b.rows]
            assert a._index == b._index and a._natural == b._natural and a._widths == b._widths
            assert a.cursor_key == key
    import asyncio
    asyncio.run(run())


async def test_added_or_removed_rows_rebuild():
    app = One()
    async with app.run_test(size=(60, 20)):
        t = app.query_one(CloudTable)
        rows = [Row(f"k{i}", (f"vm-{i}", str(i), "running")) for i in range(5)]
        t.set_rows(rows)
        calls = []
        orig = t._place_rows
        t._place_rows = lambda: (calls.append(1), orig())
        t.set_rows(rows[:4])
        t.set_rows(rows[:4] + [Row("k9", ("vm-9", "1", "running"))])
        assert len(calls) == 2 and [r.key for r in t.rows][-1] == "k9"


# -- through the console: a metrics-like snapshot changes a VM's CPU % --------------------------


def app_of() -> VirtdeckApp:
    app = VirtdeckApp(FixedModel(sample_cloud()))
    app.animation_level = "none"
    return app


def with_cpu(cloud, name: str, pct: float):
    return replace(cloud, vms=tuple(replace(v, cpu_percent=pct) if v.name == name else v
                                    for v in cloud.vms))


def line_of(table: CloudTable, name: str) -> str:
    for y in range(1, len(table.rows) + 1):
        text = table.render_line(y).text
        if name in text:
            return text
    raise AssertionError(f"{name} is not drawn")


CPU = [c.key for c in VM_COLUMNS].index("cpu")


async def test_cpu_update_shows_cursor_and_marks_stay():
    app = app_of()
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        table = app.screen.table()
        await pilot.press("j", "j", "space")        # mark "build" (the cursor may move on)
        await pilot.pause()
        key = table.cursor_key
        marked = next(r.key for r in table.rows if r.cells[0] == MARK + "build")
        calls = []
        orig = table._place_rows
        table._place_rows = lambda: (calls.append(1), orig())
        app.source.set(with_cpu(app.cloud, "web-1", 77))
        await pilot.pause()
        assert calls == [], "a figures-only change updates rows in place"
        assert " 77 " in line_of(table, "web-1")
        assert table.cursor_key == key
        assert next(r for r in table.rows if r.key == marked).cells[0] == MARK + "build"


async def test_sort_follows_a_changed_cpu_and_the_cursor_follows_its_row():
    app = app_of()
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("2")
        await pilot.pause()
        table = app.screen.table()
        table.sort_by(CPU)                  # ascending: blank figures last
        assert table.rows[0].cells[0] == "web-1"           # 12 %: the only figure
        table.select_key(next(r.key for r in table.rows if r.cells[0] == "web-1"))
        app.source.set(with_cpu(app.cloud, "legacy", 5))
        await pilot.pause()
        assert [r.cells[0] for r in table.rows][:2] == ["legacy", "web-1"]
        assert table.rows[table.cursor].cells[0] == "web-1"
        app.source.set(with_cpu(app.cloud, "legacy", 50))
        await pilot.pause()
        assert [r.cells[0] for r in table.rows][:2] == ["web-1", "legacy"]
        assert table.rows[table.cursor].cells[0] == "web-1"


async def test_filter_still_applies_to_updated_rows():
    app = app_of()
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.press("2", "slash", *"web|legacy", "enter")
        await pilot.pause()
        table = app.screen.table()
        assert sorted(r.cells[0] for r in table.rows) == ["legacy", "web-1"]
        app.source.set(with_cpu(with_cpu(app.cloud, "web-1", 55), "db-1", 40))
        await pilot.pause()
        assert sorted(r.cells[0] for r in table.rows) == ["legacy", "web-1"]
        assert " 55 " in line_of(table, "web-1")


@pytest.mark.parametrize("n", [3030])
async def test_a_few_changed_rows_among_thousands_keep_the_rest(n):
    app = One()
    async with app.run_test(size=(60, 20)):
        t = app.query_one(CloudTable)
        rows = [Row(f"k{i}", (f"vm-{i}", str(i % 7), "shutoff")) for i in range(n)]
        t.sort_by(1, reverse=True)
        t.set_rows(rows)
        before = t.rows
        for i in range(0, n, n // 30):
            rows[i] = Row(rows[i].key, (rows[i].cells[0], "50", "running"))
        t.set_rows(rows)
        assert [r.cells[1] for r in t.rows[:30]] == ["50"] * 30
        kept = {id(r) for r in before} & {id(r) for r in t.rows}
        assert len(kept) == n - 30 + (n % 30 > 0) * 0 and len(t.rows) == n
