"""Prints what a metrics-like refill of the VMs table costs (screens/table.py CloudTable): 3,030
rows, ~30 of them (the running VMs) with a new CPU% figure each snapshot, the rest the same Row
objects — as views.vm_rows hands them over. A: the whole-table rebuild (``_place_rows``, what
every refill did before); B: the incremental refill (same keys in the same order: only the
changed rows are replaced). Given order, Name ascending and CPU% descending (the changed cells
are the sorted ones: rows move). Figures only.

    .venv/bin/python tests/bench/bench_table_update.py
"""

from __future__ import annotations

import asyncio
import os
import time

from textual.app import App

from virtdeck.screens.table import CloudTable, Row
from virtdeck.screens.views import VM_COLUMNS

CPU = [c.key for c in VM_COLUMNS].index("cpu")


def rows(n: int) -> list[Row]:
    return [Row(f"vm:hv{i % 3}:{i:032x}", (f"vm-{i:05d}", f"hv{i % 3}", ("running", "shutoff")[i % 100 == 0],
                                          str(1 + i % 8), str(512 * (1 + i % 16)), f"t{i % 40}", "net",
                                          f"10.0.{i // 256 % 256}.{i % 256}", "")
                + ("",) * (len(VM_COLUMNS) - 9)) for i in range(n)]


def snapshot(base: list[Row], k: int) -> list[Row]:
    """Snapshot ``k``: every 100th row (the running ones) shows a new CPU%."""
    out = list(base)
    for i in range(0, len(out), 100):
        cells = list(out[i].cells)
        cells[CPU] = str((i * 7 + k * 13) % 100)
        out[i] = Row(out[i].key, tuple(cells))
    return out


class Bench(App):
    def compose(self):
        yield CloudTable(VM_COLUMNS)


async def main() -> None:
    app = Bench()
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.query_one(CloudTable)
        print(f"load {os.getloadavg()[0]:.2f}")
        print(f"{'rows':>6} {'sort':<14} {'A rebuild':>10} {'B incremental':>14}  (ms per refill, median of 20)")
        incremental = CloudTable._update_rows
        for n in (3030, 10000):
            base = rows(n)
            for label, col, rev in (("given order", None, False), ("Name asc", 0, False), ("CPU% desc", CPU, True)):
                figures = []
                for update in (lambda self, given: False, incremental):
                    table._update_rows = update.__get__(table)
                    table.sort_by(None)
                    table.set_rows([])
                    table.sort_by(col, rev)
                    table.set_rows(snapshot(base, 0))
                    await pilot.pause()
                    took = []
                    for k in range(1, 21):
                        given = snapshot(base, k)
                        t = time.perf_counter()
                        table.set_rows(given)
                        took.append(time.perf_counter() - t)
                    took.sort()
                    figures.append(took[len(took) // 2] * 1000)
                print(f"{n:>6} {label:<14} {figures[0]:>10.2f} {figures[1]:>14.2f}")


if __name__ == "__main__":
    asyncio.run(main())
