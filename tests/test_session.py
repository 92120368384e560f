"""Session and SSH links against a real OpenSSH sshd and a real OVN NB ovsdb-server."""

from __future__ import annotations

import subprocess
import time

import pytest

from virtdeck.backends import ssh_config
from virtdeck.backends.session import Session
from virtdeck.backends.ssh import HostKeyChanged, HostKeyUnknown, trust_host_key
from virtdeck.config.inventory import HostConfig, Inventory, OvnConfig, SshDefaults
from virtdeck.console.errors import HostError


@pytest.fixture(autouse=True)
def isolated_user_known_hosts(tmp_path, monkeypatch):
    """Never read or write the real ~/.ssh/known_hosts from tests (nor the machine's
    ssh_config or global known_hosts: the results must not depend on the machine)."""
    monkeypatch.setattr(ssh_config, "DEFAULT_USER_KNOWN_HOSTS", (tmp_path / "user_known_hosts",))
    monkeypatch.setattr(ssh_config, "DEFAULT_GLOBAL_KNOWN_HOSTS", (tmp_path / "global_known_hosts",))
    monkeypatch.setattr(ssh_config, "USER_CONFIG", tmp_path / "ssh_config")
    monkeypatch.setattr(ssh_config, "SYSTEM_CONFIG", tmp_path / "etc_ssh_config")


def inventory_for(sshd, known_hosts=None, **ovn) -> Inventory:
    host = HostConfig(name="box", address=sshd.address, port=sshd.port, user="root", hypervisor=False)
    return Inventory(hosts=(host,), ssh=SshDefaults(identity=str(sshd.client_key),
                                                    known_hosts=str(known_hosts or sshd.known_hosts)),
                     ovn=OvnConfig(**ovn))


def test_run_command_with_known_host(sshd):
    with Session(inventory_for(sshd)) as s:
        res = s.run("box", ["echo", "hello world"])
        assert res.ok and res.stdout == "hello world\n"
        assert s.run("box", "exit 3").rc == 3


def test_unknown_host_key_is_not_accepted_then_trusted(sshd, tmp_path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    with Session(inventory_for(sshd, known_hosts=empty)) as s:
        with pytest.raises(HostKeyUnknown) as info:
            s.link("box")
    err = info.value
    expected = subprocess.run(["ssh-keygen", "-lf", str(sshd.dir / "ssh_host_ed25519_key.pub")],
                              capture_output=True, text=True, check=True).stdout.split()[1]
    assert err.fingerprint == expected
    assert expected in str(err)
    trust_host_key(err.address, err.port, err.key_line, empty)
    with Session(inventory_for(sshd, known_hosts=empty)) as s:
        assert s.run("box", "true").ok


def test_changed_host_key_is_refused(sshd, tmp_path):
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kt, kb = (other.with_suffix(".pub")).read_text().split()[:2]
    forged = tmp_path / "forged_known_hosts"
    forged.write_text(f"[127.0.0.1]:{sshd.port} {kt} {kb}\n")
    with Session(inventory_for(sshd, known_hosts=forged)) as s:
        with pytest.raises(HostKeyChanged, match="HOST KEY CHANGED"):
            s.link("box")


def test_unreachable_host_fails_fast(sshd):
    from fixtures_real import free_port, stop_pid
    stop_pid(sshd.pid)
    inv = inventory_for(sshd)
    t0 = time.monotonic()
    with Session(inv, connect_timeout=3) as s:
        result = s.connect()
    assert isinstance(result["box"], HostError)
    assert "box (127.0.0.1:" in str(result["box"])
    assert time.monotonic() - t0 < 5


def test_nb_over_ssh_forward(sshd, nb_server):
    inv = inventory_for(sshd, via_host="box", nb_socket=str(nb_server.socket))
    with Session(inv) as s:
        assert s.nb_remote().startswith("unix:")
        api = s.nb()
        api.ls_add("sw-test", may_exist=True).execute(check_error=True)
        names = [ls.name for ls in api.ls_list().execute(check_error=True)]
        assert names == ["sw-test"]
    out = subprocess.run(["ovn-nbctl", f"--db={nb_server.unix}", "ls-list"], capture_output=True, text=True)
    assert "sw-test" in out.stdout
