"""The live model's SB worker: one thread owning a read-only OVN southbound connection.

The python-ovs IDL keeps a replica of the SB tables :mod:`backends.ovn.southbound` monitors
(chassis, encaps, port bindings, gateway chassis) up to date by itself: the server pushes every
change. This thread only looks at the replica's change counter (``change_seqno``, in memory, no
round trip) and the member it reads from every :data:`LOOK` seconds and, when either moved,
re-reads the replica into a :class:`backends.ovn.southbound.SbData` published as ``Cloud.sb``
(its ``member`` is the status line's "SB via"). A connection that cannot be
opened (no SB configured, SB down) is retried with a backoff of 2, 4 … 60 s; meanwhile
``Cloud.sb`` keeps its last value (None until the first read). The SB is optional: the console
works without it, it only loses the chassis and binding facts.

:class:`SbWorker` is :class:`console.live.LiveModel`'s own thread: it publishes through the
model's ``_set_sb`` and reads its ``session``, ``inventory`` and ``_stop``.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from ..backends.ovn import southbound

if TYPE_CHECKING:
    from .live import LiveModel

log = logging.getLogger(__name__)

LOOK = 0.5           # seconds between looks at the replica's change counter (no I/O)
MAX_BACKOFF = 60.0   # seconds between attempts to (re)open the SB


class SbWorker(threading.Thread):
    """Keeps ``Cloud.sb`` in step with the southbound (see the module doc)."""

    def __init__(self, live: "LiveModel"):
        super().__init__(name="live-sb", daemon=True)
        self.live = live
        self.error: str | None = None

    def run(self) -> None:
        live = self.live
        backoff = 2.0
        while not live._stop.is_set():
            api = None
            try:
                api = southbound.connect(southbound.remote(live.session),
                                         timeout=live.session.connect_timeout,
                                         ssl=southbound._ssl_files(live.inventory))
                backoff = 2.0
                self.error = None
                self._serve(api)
            except Exception as exc:  # noqa: BLE001 - optional facts: say why, retry later
                self.error = str(exc) or type(exc).__name__
                log.debug("SB: %s", self.error)
            finally:
                if api is not None:
                    southbound.close(api)
            live._stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _serve(self, api) -> None:
        live = self.live
        seen = None
        while not live._stop.is_set():
            # a failover to another member may bring no row change (monitor_cond_since): the
            # member in use is looked at too, so the status line's "SB via" follows it
            seq = (api.idl.change_seqno, southbound.member(api))
            if seq != seen:
                seen = seq
                live._set_sb(southbound.read(api, live.inventory.hosts))
            if not api.idl._session.is_connected() and not api.idl._session.is_alive():
                raise ConnectionError("SB session ended")
            live._stop.wait(LOOK)
