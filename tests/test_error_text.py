"""Error text without internals (issue 16 item 7): no ovsdbapp command repr, no bare
``UUID('…')``, the NB named as the inventory names it (not a forwarded socket in /tmp), and no
python-ovs / ovsdbapp log lines on stderr. Real ovsdb-server and sshd, nothing mocked.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import pytest

from virtdeck.backends.ovn import rows as ovn_rows
from virtdeck.backends.session import Session, open_nb
from virtdeck.config.inventory import HostConfig, Inventory, OvnConfig, SshDefaults
from virtdeck.console.errors import HostError
from fixtures_real import free_port

VIRTDECK = os.path.join(os.path.dirname(sys.executable), "virtdeck")
INTERNALS = ("Command(", "UUID('", "virtdeck-fwd", "Traceback", "Unable to open stream", "object at 0x")


def clean(text: str) -> None:
    for word in INTERNALS:
        assert word not in text, text


def test_cli_nb_unreachable_is_one_line(tmp_path):
    port = free_port()  # nothing listens there
    inv = tmp_path / "inventory.toml"
    inv.write_text(f'[ovn]\nconnection = "tcp:127.0.0.1:{port}"\n')
    p = subprocess.run([VIRTDECK, "--config", str(inv), "network", "list"], capture_output=True, text=True,
                       timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 5
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr  # the ovs library printed "Unable to open stream …" here before
    assert lines[0].startswith(f"virtdeck: OVN northbound on tcp:127.0.0.1:{port}: no answer"), lines
    clean(p.stderr)


def test_nb_via_host_is_named_by_its_host(sshd, tmp_path, capfd):
    """The NB reached through an SSH-forwarded socket: the error names the inventory's via_host,
    not the private socket virtdeck made for the forward."""
    host = HostConfig(name="central", address=sshd.address, port=sshd.port, user="root", hypervisor=False)
    inv = Inventory(hosts=(host,), ssh=SshDefaults(identity=str(sshd.client_key), known_hosts=str(sshd.known_hosts)),
                    ovn=OvnConfig(via_host="central", nb_socket=str(tmp_path / "no-nb-here.sock")))
    with Session(inv, connect_timeout=3) as s:
        with pytest.raises(HostError) as exc:
            s.nb()
    text = str(exc.value)
    assert text.startswith("OVN northbound on central: "), text
    clean(text)
    clean(capfd.readouterr().err)


def test_transaction_errors_carry_no_internals(nb_server, capfd):
    api = open_nb(nb_server.unix, timeout=2, label="central")
    try:
        sw = api.ls_add("sw-gone").execute(check_error=True)
        api.ls_del("sw-gone").execute(check_error=True)
        # a switch deleted under a create (another operator, mid-create)
        with pytest.raises(HostError) as exc:
            with ovn_rows.checked_txn(api, "creating port p1 on sw-gone") as txn:
                txn.add(api.lsp_add(sw.uuid, "p1", addresses=["52:54:00:00:00:01 10.0.0.5"]))
        text = str(exc.value)
        assert text.startswith("OVN northbound on central: creating port p1 on sw-gone failed: "), text
        assert str(sw.uuid) in text
        clean(text)
        # a frozen NB: the transaction times out; the message says how long, not the command
        os.kill(nb_server.pid, signal.SIGSTOP)
        try:
            with pytest.raises(HostError) as exc:
                with ovn_rows.checked_txn(api, "creating switch sw-late") as txn:
                    txn.add(api.ls_add("sw-late", external_ids={"virtdeck:tenant": "t-err"}))
        finally:
            os.kill(nb_server.pid, signal.SIGCONT)
        text = str(exc.value)
        assert "creating switch sw-late failed: no answer within 2 s; the change may still be applied" in text, text
        clean(text)
        assert len(text) < 300
    finally:
        api.ovsdb_connection.stop(timeout=2)
    clean(capfd.readouterr().err)  # ovsdbapp logged the failed command's traceback here before


def test_describe_words():
    from ovsdbapp import exceptions as ovs_exc
    from ovsdbapp.schema.ovn_northbound import commands
    cmd = commands.LspAddCommand(None, "sw1", str(uuid.uuid4()), addresses=["52:54:00:00:00:01 10.0.0.5"],
                                 external_ids={"virtdeck:vm": "x" * 200})
    u = uuid.uuid4()
    cases = {
        ovs_exc.TimeoutException(commands=[cmd], timeout=10, cause="Result queue is empty"):
            "no answer within 10 s; the change may still be applied once it answers",
        KeyError(u): f"a row it refers to ({u}) was deleted meanwhile; try again",
        RuntimeError(f"{cmd!r} refers to {u!r}"): f"lsp_add refers to {u}",
        ConnectionError("unix:/tmp/virtdeck-fwd-1234-ab/ovnnb.sock: EOF"): "the forwarded NB socket: EOF",
    }
    for exc, words in cases.items():
        assert ovn_rows.describe(exc) == words
    assert len(ovn_rows.describe(RuntimeError("x" * 1000))) == ovn_rows.MAX_TEXT
