"""The live model's NB worker: one thread owning the OVN NB connection.

OVSDB row changes arrive coalesced per batch (:mod:`backends.ovn.connection`'s sink); the NB
replica is then re-read (no round trip) into the :class:`~console.live_snapshot.NbPart`. When
the connection drops, the last data stays and the status says ``stale``; the python-ovs IDL
reconnects on its own, and after ``nb_reset_after`` s the connection (and its SSH forward) is
rebuilt. Retries back off 1, 2, 4 … 30 s; an unknown host key waits for the operator.

The worker reads through :meth:`backends.session.Session.nb_reader`: with a raft member list
that connection is not leader-only, so the live view stays on (or moves to) any member during an
election, while the services keep writing through the leader-only :meth:`Session.nb`. The
member read from is published as ``NbStatus.member`` (the status line's ``via``); a move to
another member is noticed even when no row changed across the failover.

:class:`NbWorker` is :class:`console.live.LiveModel`'s own thread: it publishes through the
model's ``_set_nb`` and ``_ask_host_key`` and reads its ``_nb``, settings and ``_stop``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from ..backends.ovn import connection as ovn_nb
from ..backends.ssh import HostKeyChanged, HostKeyUnknown
from .errors import HostError
from .live_snapshot import NbPart
from .model import NB_CONNECTING, NB_STALE, NB_UP

if TYPE_CHECKING:
    from .live import LiveModel

log = logging.getLogger(__name__)

_WAKE = "wake"        # queued by wake(): re-check stop / retry now


class NbWorker(threading.Thread):
    """Owns the NB connection: read on change, mark stale on loss, rebuild after a while."""

    def __init__(self, live: "LiveModel"):
        super().__init__(name="live-nb", daemon=True)
        self.live = live
        self.q: queue.Queue = queue.Queue()
        self.ever_up = False

    def wake(self) -> None:
        self.q.put(_WAKE)

    def _status(self, state: str, error: str | None = None) -> None:
        cur = self.live._nb
        if cur.status.state != state or cur.status.error != error:
            # the member is only known while up (the status line shows none when stale)
            st = replace(cur.status, state=state, error=error, since=time.time(),
                         member=cur.status.member if state == NB_UP else None)
            self.live._set_nb(replace(cur, status=st, answered=True))

    def _wait(self, seconds: float | None) -> None:
        try:
            self.q.get(timeout=seconds)
        except queue.Empty:
            pass

    def run(self) -> None:
        live = self.live
        backoff = 1.0
        while not live._stop.is_set():
            wait: float | None = backoff
            try:
                api = live.session.nb_reader()
                backoff = 1.0
                self._serve(api)
                wait = 0.0
            except HostKeyUnknown as exc:
                live._ask_host_key(exc)
                self._status(NB_STALE, str(exc))
                wait = None
            except HostKeyChanged as exc:
                self._status(NB_STALE, str(exc))
                wait = None
            except Exception as exc:  # noqa: BLE001 - HostError, OVSDB errors, …
                self._status(NB_STALE if self.ever_up else NB_CONNECTING, f"{exc} (retrying)")
                backoff = min(backoff * 2, 30.0)
            try:
                live.session.reset_nb_reader()
            except Exception:  # noqa: BLE001
                log.debug("reset_nb_reader failed", exc_info=True)
            if live._stop.is_set():
                return
            if wait != 0.0:
                self._wait(wait)

    def _serve(self, api) -> None:
        live = self.live
        ovn_nb.set_sink(api, self.q.put_nowait)
        try:
            self._read(api)
            down_since: float | None = None
            while not live._stop.is_set():
                try:
                    item = self.q.get(timeout=1.0)
                except queue.Empty:
                    item = None
                items = [item] if item is not None else []
                while True:
                    try:
                        items.append(self.q.get_nowait())
                    except queue.Empty:
                        break
                if any(i == _WAKE for i in items) and live._stop.is_set():
                    return
                changed = any(isinstance(i, ovn_nb.NbChange) and i.tables for i in items)
                if ovn_nb.is_connected(api):
                    down_since = None
                    # a failover to another member may bring no row change (monitor_cond_since)
                    if (changed or live._nb.status.state != NB_UP
                            or ovn_nb.member(api) != live._nb.status.member):
                        self._read(api)
                else:
                    if down_since is None:
                        down_since = time.monotonic()
                        self._status(NB_STALE, "OVN northbound connection lost; showing the "
                                               "last known data")
                    if time.monotonic() - down_since > live.nb_reset_after:
                        raise HostError("OVN northbound did not come back; reconnecting")
        finally:
            ovn_nb.set_sink(api, None)

    def _read(self, api) -> None:
        if not self.ever_up:
            log.info("NB up %.0f ms after start", (time.monotonic() - (self.live.started_at or 0)) * 1000)
        self.ever_up = True
        data = ovn_nb.read(api)
        member = ovn_nb.member(api)
        if member != self.live._nb.status.member:
            log.info("NB reading from %s", member)
        st = replace(self.live._nb.status, state=NB_UP, error=None, member=member,
                     since=time.time() if self.live._nb.status.state != NB_UP
                     else self.live._nb.status.since)
        self.live._set_nb(NbPart(st, data, answered=True))
