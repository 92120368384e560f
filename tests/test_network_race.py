"""Two operators creating conflicting networks at once (issue 5: "overlapping CIDRs in one tenant,
a VLAN already used on that physnet ... each refused ... nothing written") against a real OVN NB
ovsdb-server, each operator with its own NB connection as two consoles would have."""

from __future__ import annotations

import threading

import pytest

from virtdeck.backends.ovn.names import switch_name
from virtdeck.backends.session import open_nb
from virtdeck.console.errors import ValidationError
from virtdeck.console.services import network as netsvc
from virtdeck.console.services.network import NetworkRequest
from ovn_helpers import nb_json

PHYSNETS = {"physnet1": ("hv1", "hv2")}


def _switches(nb_server) -> list[str]:
    return sorted(r["name"] for r in nb_json(nb_server, "Logical_Switch", "name"))


@pytest.fixture
def two_apis(nb_server, audit_log):
    apis = [open_nb(nb_server.unix), open_nb(nb_server.unix)]
    yield apis
    for a in apis:
        a.ovsdb_connection.stop(timeout=2)


def test_other_operator_commits_between_validate_and_write(nb_server, two_apis, monkeypatch):
    mine, theirs = two_apis
    real_validate = netsvc.validate_network
    calls = []

    def validate_then_other_operator_writes(req, existing, physnets):
        spec = real_validate(req, existing, physnets)
        if not calls:  # our validation passed; the other console commits its overlapping network now
            calls.append(req.name)
            monkeypatch.setattr(netsvc, "validate_network", real_validate)
            netsvc.create_network(theirs, NetworkRequest(tenant="t1", name="b", kind="overlay",
                                                         cidr="10.9.0.0/16"))
            monkeypatch.setattr(netsvc, "validate_network", validate_then_other_operator_writes)
        return spec

    monkeypatch.setattr(netsvc, "validate_network", validate_then_other_operator_writes)
    with pytest.raises(ValidationError) as err:
        netsvc.create_network(mine, NetworkRequest(tenant="t1", name="a", kind="overlay", cidr="10.9.1.0/24"))
    assert err.value.field == "cidr" and "overlaps 10.9.0.0/16" in str(err.value)
    assert "another operator" in str(err.value) and "nothing kept" in str(err.value)
    assert _switches(nb_server) == [switch_name("t1", "b")]
    assert len(nb_json(nb_server, "DHCP_Options", "cidr")) == 1, "our DHCP row went with our switch"


@pytest.mark.parametrize("kind", ["cidr", "vlan"])
def test_simultaneous_conflicting_creates_never_both_kept(nb_server, two_apis, kind):
    """Many rounds of two threads released by one barrier; a round may refuse both, never keep both."""
    for rnd in range(8):
        barrier = threading.Barrier(2)
        results = [None, None]

        def go(i):
            if kind == "cidr":
                req = NetworkRequest(tenant="t1", name=f"r{rnd}n{i}", kind="overlay",
                                     cidr=f"10.{50 + rnd}.0.0/{24 - i}")  # /24 inside /23
            else:  # two tenants, one VLAN on one physnet
                req = NetworkRequest(tenant=f"t{i}", name=f"r{rnd}", kind="provider", physnet="physnet1",
                                     vlan=100 + rnd, cidr=f"10.{60 + rnd}.{i}.0/24")
            barrier.wait()
            try:
                results[i] = netsvc.create_network(two_apis[i], req, PHYSNETS)
            except ValidationError as exc:
                results[i] = exc

        threads = [threading.Thread(target=go, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        kept = [r for r in results if not isinstance(r, Exception)]
        assert len(kept) <= 1, f"round {rnd}: both conflicting networks kept: {results}"
        assert None not in results, f"round {rnd}: a create never returned"
        names = {r.switch for r in kept}
        mine = ({switch_name("t1", f"r{rnd}n{i}") for i in (0, 1)} if kind == "cidr"
                else {switch_name(f"t{i}", f"r{rnd}") for i in (0, 1)})
        on_server = set(_switches(nb_server)) & mine
        assert on_server == names, f"round {rnd}: server holds {on_server}, kept {names}"
