"""Prints what the VMs table costs to fill with and without a sort (screens/table.py CloudTable),
at 3,000 and 10,000 rows: the first fill, a refill with the same Row objects (what a change to one
host's figures costs: rows kept by identity), and a refill where one row changed. Figures only.

    .venv/bin/python tests/bench/bench_table_sort.py
"""

from __future__ import annotations

import asyncio
import os
import time

from textual.app import App

from virtdeck.screens.table import CloudTable, Row
from virtdeck.screens.views import VM_COLUMNS


def rows(n: int) -> list[Row]:
    return [Row(f"vm:hv{i % 16}:{i:032x}", (f"vm-{i:05d}", f"hv{i % 16}", ("running", "shutoff")[i % 2],
                                           str(1 + i % 8), str(512 * (1 + i % 16)), f"t{i % 40}", "net",
                                           f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}", "")
                + ("",) * (len(VM_COLUMNS) - 9)) for i in range(n)]


class Bench(App):
    def compose(self):
        yield CloudTable(VM_COLUMNS)


def ms(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1000


async def main() -> None:
    app = Bench()
    async with app.run_test(size=(160, 48)):
        table = app.query_one(CloudTable)
        print(f"load {os.getloadavg()[0]:.2f}")
        print(f"{'rows':>6} {'sort':<14} {'first fill':>11} {'same rows':>10} {'one changed':>12}  (ms, best of 5)")
        for n in (3000, 10000):
            base = rows(n)
            for label, col, rev in (("given order", None, False), ("Name asc", 0, False), ("RAM desc", 4, True)):
                table.sort_by(None)
                table.set_rows([])
                table.sort_by(col, rev)
                first = ms(lambda: (table.set_rows([]), table.set_rows(base)), repeat=1)
                same = ms(lambda: table.set_rows(base))
                changed = list(base)
                changed[n // 2] = Row(changed[n // 2].key, ("zz",) + changed[n // 2].cells[1:])
                one = ms(lambda: table.set_rows(changed))
                print(f"{n:>6} {label:<14} {first:>11.1f} {same:>10.1f} {one:>12.1f}")


if __name__ == "__main__":
    asyncio.run(main())
