"""The drift view in the console on the lab: the palette's "check" opens it on the highlighted
host (its chain: chassis, encap, mappings), the check runs in a worker and its report appears (the
same lines `virtdeck check host NAME` prints); ``a`` checks the whole cloud; escape closes it."""

from __future__ import annotations

import asyncio
import time

import pytest

from virtdeck.console.app import VirtdeckApp
from virtdeck.console.live import LiveModel
from console_fixtures import palette_pick


@pytest.mark.lab
async def test_palette_check_opens_the_drift_view(lab_inv):
    from virtdeck.screens.drift import DriftScreen
    live = LiveModel(lab_inv).start()
    app = VirtdeckApp(live, inventory=lab_inv)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await asyncio.to_thread(live.wait_ready, 20)
            await pilot.press("1")
            await pilot.pause(0.3)
            await palette_pick(pilot, "check")
            await pilot.pause(0.5)
            assert isinstance(app.screen, DriftScreen)
            t0 = time.monotonic()
            while app.screen.report is None and time.monotonic() - t0 < 60:
                await pilot.pause(0.2)
            text = str(app.screen.query_one("#drift-text").render())
            assert app.screen.report is not None
            assert ("no drift" in text) or ("finding(s)" in text), text
            scope = app.screen.scope
            assert scope is not None and scope[0] == "host", scope
            assert f"host {scope[1]}:" in text and "chassis" in text, text
            await pilot.press("a")
            await pilot.pause(0.2)
            while app.screen.scope is not None or "checking" in str(app.screen.query_one("#drift-text").render()):
                await pilot.pause(0.2)
                if time.monotonic() - t0 > 60:
                    break
            assert app.screen.scope is None and "host " not in str(app.screen.query_one("#drift-text").render())
            print(f"drift view filled in {time.monotonic() - t0:.1f} s")
            if not any(f["safe"] for f in app.screen.report["findings"]):
                await pilot.press("f")          # nothing to remove: no question, the view stays
                await pilot.pause()
                assert isinstance(app.screen, DriftScreen)
            await pilot.press("r")
            await pilot.pause(0.2)
            while "checking" in str(app.screen.query_one("#drift-text").render()) \
                    and time.monotonic() - t0 < 60:
                await pilot.pause(0.2)
            assert "checking" not in str(app.screen.query_one("#drift-text").render())
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, DriftScreen)
    finally:
        live.stop()
