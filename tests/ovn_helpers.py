"""Helpers for tests against a real OVN NB ovsdb-server (the ``nb_server`` fixture): read rows
back through ``ovn-nbctl`` (an independent reader, so a test passes only if the server really
holds what virtdeck meant to write) and add a VM port as another client would.

The ``api`` and ``audit_log`` fixtures that go with them are in tests/conftest.py.
"""

from __future__ import annotations

import json
import subprocess
import time

from virtdeck.backends.ovn import networks as ovn_networks

# One provider physnet mapped on two hypervisors: what the network services are given as
# ``physnets`` (physnet name -> hosts whose OVS maps it) when no lab is there to ask.
PHYSNETS = {"physnet1": ("hv1", "hv2")}


def nbctl(nb_server, *args) -> str:
    """Run ``ovn-nbctl --db=<nb_server.unix> ARGS``; returns its stdout (CalledProcessError on a
    non-zero exit)."""
    return subprocess.run(["ovn-nbctl", f"--db={nb_server.unix}", *args], check=True,
                          capture_output=True, text=True).stdout


def nb_json(nb_server, table, *cols) -> list[dict]:
    """Every row of NB ``table`` as {column: OVSDB JSON value}, read by ovn-nbctl (columns
    ``cols``)."""
    out = nbctl(nb_server, "--format=json", f"--columns={','.join(cols)}", "list", table)
    data = json.loads(out)
    return [dict(zip(data["headings"], row)) for row in data["data"]]


def ovs_map(v) -> dict:
    """An OVSDB JSON ``["map", [[k, v], …]]`` value as a dict (asserts it is a map)."""
    assert v[0] == "map"
    return {k: val for k, val in v[1]}


def add_vm_port(nb_server, net: ovn_networks.NetworkInfo, lsp: str, mac: str, ip: str, api=None) -> None:
    """Another client (ovn-nbctl) adds a VM port; wait until ``api``'s replica has it."""
    nbctl(nb_server, "lsp-add", net.switch, lsp, "--", "lsp-set-addresses", lsp, f"{mac} {ip}",
          "--", "lsp-set-dhcpv4-options", lsp, net.dhcp_options)
    deadline = time.monotonic() + 5
    while api is not None and not any(p.name == lsp for p in api.tables["Logical_Switch_Port"].rows.values()):
        assert time.monotonic() < deadline, "the IDL never saw the port"
        time.sleep(0.01)
