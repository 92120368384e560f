"""Fixtures shared by the lab end-to-end network tests (tests/e2e/test_networks.py and
test_router_tui.py): a session on the lab, fresh tenants that are torn down and checked, probe
ports that are closed afterwards."""

from __future__ import annotations

import uuid

import pytest

from virtdeck.backends.ovn import rows as ovn_rows
from virtdeck.backends.session import Session
from virtdeck.config.inventory import load
from net_helpers import teardown_tenant
from probes import Probe


@pytest.fixture(scope="module")
def session(lab):
    """A Session on the lab's inventory (module scope), closed afterwards."""
    s = Session(load(lab.inventory))
    yield s
    s.close()


@pytest.fixture
def tenants(session):
    """Fresh tenant names; at the end every object of theirs is deleted through the services
    and the NB must hold no row carrying their virtdeck external_ids."""
    made: list[str] = []

    def new(label: str) -> str:
        t = f"e2e{uuid.uuid4().hex[:5]}{label}"
        made.append(t)
        return t

    yield new
    nb = session.nb()
    for t in made:
        teardown_tenant(session, t)
    left = ovn_rows.virtdeck_rows(nb, made)
    assert left == {}, f"rows left behind: {left}"


@pytest.fixture
def probes():
    """``plug(host, port, ip=None) -> Probe``: a probe port on ``host`` bound to LSP ``port``
    (static ``ip`` or DHCP later); every probe made is closed afterwards."""
    made: list[Probe] = []

    def plug(host, port, ip=None) -> Probe:
        p = Probe.create(host, port.name, port.mac, ip)
        made.append(p)
        return p

    yield plug
    for p in made:
        p.close()
