"""ssh_config decides what the inventory leaves unset, as for OpenSSH's `ssh` (issue 11, part 1).

Real OpenSSH sshd processes on 127.0.0.1 (non-22 ports, throwaway keys; a second sshd is the
ProxyJump host), a ~/.ssh/config in a temporary HOME, a real ssh-agent where IdentitiesOnly
matters, and `ssh-keygen -F` / the `ssh` client itself to prove that trusted keys are recorded
where OpenSSH finds them. No mocks of SSH. The machine's /etc/ssh files are swapped for
temporary ones (module attributes), so nothing here depends on or touches the machine's.
Over 400 lines on purpose: one short test per option, sharing the HOME and sshd fixtures above.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from virtdeck.backends import ssh_config
from virtdeck.backends.session import Session
from virtdeck.backends.ssh import HostKeyChanged, HostKeyUnknown, trust_host_key
from virtdeck.config.inventory import HostConfig, Inventory, SshDefaults, save
from virtdeck.console.errors import HostError
from fixtures_real import start_sshd, stop_pid, wait_for

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    """A temporary HOME with an empty ~/.ssh; no agent; /etc/ssh stand-ins under tmp_path."""
    h = tmp_path / "home"
    (h / ".ssh").mkdir(parents=True, mode=0o700)
    monkeypatch.setenv("HOME", str(h))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.setattr(ssh_config, "SYSTEM_CONFIG", tmp_path / "etc" / "ssh_config")
    monkeypatch.setattr(ssh_config, "DEFAULT_GLOBAL_KNOWN_HOSTS", (tmp_path / "etc" / "ssh_known_hosts",))
    (tmp_path / "etc").mkdir()
    return h


@pytest.fixture
def target(tmp_path):
    s = start_sshd(tmp_path / "target")
    yield s
    stop_pid(s.pid)


@pytest.fixture
def jump(tmp_path):
    s = start_sshd(tmp_path / "jump")
    yield s
    stop_pid(s.pid)


def ssh_config_file(home: Path, text: str) -> Path:
    p = home / ".ssh" / "config"
    p.write_text(textwrap.dedent(text))
    return p


def key_of(sshd) -> str:
    return sshd.host_key_pub


def entry(name: str, sshd) -> str:
    return f"{name} {key_of(sshd)}\n"


def user_known_hosts(home: Path) -> Path:
    return home / ".ssh" / "known_hosts"


def fingerprint(sshd) -> str:
    return subprocess.run(["ssh-keygen", "-lf", str(sshd.dir / "ssh_host_ed25519_key.pub")],
                          capture_output=True, text=True, check=True).stdout.split()[1]


def inventory(address: str, **host) -> Inventory:
    ssh = host.pop("ssh", SshDefaults())
    return Inventory(hosts=(HostConfig(name="box", address=address, hypervisor=False, **host),), ssh=ssh)


def run(inv: Inventory, command: str = "echo $SSH_CONNECTION; whoami") -> list[str]:
    with Session(inv, connect_timeout=5) as s:
        res = s.run("box", command)
    assert res.ok, res
    return res.stdout.split()


def found_by_ssh_keygen(file: Path, name: str) -> bool:
    """OpenSSH's own lookup (`ssh-keygen -F`, hashed entries included)."""
    return subprocess.run(["ssh-keygen", "-F", name, "-f", str(file)], capture_output=True).returncode == 0


def other_user() -> str | None:
    """A local account other than root with a login shell (the sshd logs in as it)."""
    shells = {line.strip() for line in open("/etc/shells") if line.startswith("/")}
    for pw in pwd.getpwall():
        if pw.pw_uid >= 1000 and pw.pw_shell in shells and pw.pw_name != "nobody":
            return pw.pw_name
    return None


# -- HostName, Port, User, IdentityFile from ssh_config --------------------------------------

def test_alias_takes_hostname_port_identity_from_ssh_config(home, target):
    ssh_config_file(home, f"""
        Host hv
            HostName 127.0.0.1
            Port {target.port}
            IdentityFile {target.client_key}
    """)
    user_known_hosts(home).write_text(entry(f"[127.0.0.1]:{target.port}", target))
    words = run(inventory("hv"))
    # SSH_CONNECTION: client ip, client port, server ip, server port
    assert words[2:4] == ["127.0.0.1", str(target.port)]
    assert words[4] == "root"


def test_host_patterns_apply_first_value_wins(home, target):
    ssh_config_file(home, f"""
        Host hv*
            Port {target.port}
        Host *
            Port 1
            HostName 127.0.0.1
            IdentityFile {target.client_key}
    """)
    user_known_hosts(home).write_text(entry(f"[127.0.0.1]:{target.port}", target))
    assert run(inventory("hv7"))[3] == str(target.port)


@pytest.fixture
def world_readable_target():
    """An sshd whose authorized_keys another account can read (sshd reads it as that user;
    pytest's tmp dirs are root-only)."""
    d = Path(tempfile.mkdtemp(prefix="virtdeck-sshd-"))
    d.chmod(0o755)
    s = start_sshd(d / "sshd")
    (d / "sshd").chmod(0o755)
    (d / "sshd" / "authorized_keys").chmod(0o644)
    # Service accounts are often locked ('!' password); sshd refuses those by itself unless
    # PAM decides (key logins pass pam_unix's account check). SIGHUP: sshd re-reads its config.
    cfg = d / "sshd" / "sshd_config"
    cfg.write_text(cfg.read_text().replace("UsePAM no", "UsePAM yes"))
    os.kill(s.pid, signal.SIGHUP)
    time.sleep(0.3)
    wait_for(lambda: _answers(s.port), 10, "sshd back after SIGHUP")
    yield s
    stop_pid(s.pid)
    shutil.rmtree(d, ignore_errors=True)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as c:
            return c.recv(4).startswith(b"SSH")
    except OSError:
        return False


def test_user_from_ssh_config(home, world_readable_target):
    user = other_user()
    if user is None:
        pytest.skip("no local account besides root with a login shell to log in as")
    target = world_readable_target
    ssh_config_file(home, f"""
        Host hv
            HostName 127.0.0.1
            Port {target.port}
            User {user}
            IdentityFile {target.client_key}
    """)
    user_known_hosts(home).write_text(entry(f"[127.0.0.1]:{target.port}", target))
    assert run(inventory("hv"), "whoami") == [user]


def test_inventory_values_win_over_ssh_config(home, target, tmp_path):
    wrong_key = tmp_path / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong_key)], check=True)
    ssh_config_file(home, f"""
        Host 127.0.0.1
            Port 1
            User nobody
            IdentityFile {wrong_key}
            IdentitiesOnly yes
            UserKnownHostsFile {tmp_path / "nowhere"}
    """)
    inv_known = tmp_path / "inventory_known_hosts"
    inv_known.write_text(entry(f"[127.0.0.1]:{target.port}", target))
    inv = inventory("127.0.0.1", user="root", port=target.port,
                    ssh=SshDefaults(identity=str(target.client_key), known_hosts=str(inv_known)))
    words = run(inv)
    assert words[3:5] == [str(target.port), "root"]


def test_identities_only_keeps_agent_keys_out(home, target, tmp_path):
    """A real ssh-agent holds the right key; ssh_config names a wrong one. Without IdentitiesOnly
    the agent's key gets in; with it, only the named key is offered and login is refused."""
    wrong_key = tmp_path / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong_key)], check=True)
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_for(sock.exists, 5, "ssh-agent socket")
        env = dict(os.environ, SSH_AUTH_SOCK=str(sock))
        subprocess.run(["ssh-add", "-q", str(target.client_key)], env=env, check=True,
                       capture_output=True)
        os.environ["SSH_AUTH_SOCK"] = str(sock)     # the fixture's monkeypatch restores it
        user_known_hosts(home).write_text(entry(f"[127.0.0.1]:{target.port}", target))
        base = f"""
            Host hv
                HostName 127.0.0.1
                Port {target.port}
                IdentityFile {wrong_key}
        """
        ssh_config_file(home, base)
        assert run(inventory("hv"), "whoami") == ["root"]
        ssh_config_file(home, base + "        IdentitiesOnly yes\n")
        with pytest.raises(HostError, match="authentication refused"):
            run(inventory("hv"), "true")
    finally:
        stop_pid(agent.pid)


# -- known_hosts files ------------------------------------------------------------------------

def test_user_known_hosts_file_replaces_the_default(home, target, tmp_path):
    custom = tmp_path / "custom_known_hosts"
    ssh_config_file(home, f"""
        Host hv
            HostName 127.0.0.1
            Port {target.port}
            IdentityFile {target.client_key}
            UserKnownHostsFile ~/custom_kh
    """)
    # listed only in ~/.ssh/known_hosts, which ssh does not read any more: unknown
    user_known_hosts(home).write_text(entry(f"[127.0.0.1]:{target.port}", target))
    with pytest.raises(HostKeyUnknown):
        run(inventory("hv"))
    (home / "custom_kh").write_text(entry(f"[127.0.0.1]:{target.port}", target))
    assert run(inventory("hv"), "whoami") == ["root"]
    assert custom.exists() is False


def test_global_known_hosts_file_and_its_default(home, target, tmp_path):
    cfg = f"""
        Host hv
            HostName 127.0.0.1
            Port {target.port}
            IdentityFile {target.client_key}
    """
    ssh_config_file(home, cfg)
    # the default global file (the stand-in for /etc/ssh/ssh_known_hosts) is read
    ssh_config.DEFAULT_GLOBAL_KNOWN_HOSTS[0].write_text(entry(f"[127.0.0.1]:{target.port}", target))
    assert run(inventory("hv"), "whoami") == ["root"]
    # GlobalKnownHostsFile replaces it
    glob = tmp_path / "global_kh"
    ssh_config_file(home, cfg + f"        GlobalKnownHostsFile {glob}\n")
    with pytest.raises(HostKeyUnknown):
        run(inventory("hv"))
    glob.write_text(entry(f"[127.0.0.1]:{target.port}", target))
    assert run(inventory("hv"), "whoami") == ["root"]


def test_user_known_hosts_none_still_checks_global(home, target):
    """`UserKnownHostsFile none` drops the user file; asyncssh alone would check nothing."""
    ssh_config_file(home, f"""
        Host hv
            HostName 127.0.0.1
            Port {target.port}
            IdentityFile {target.client_key}
            UserKnownHostsFile none
    """)
    with pytest.raises(HostKeyUnknown):
        run(inventory("hv"))


def test_hashed_known_hosts_entries(home, target):
    ssh_config_file(home, f"""
        Host hv
            HostName 127.0.0.1
            Port {target.port}
            IdentityFile {target.client_key}
    """)
    kh = user_known_hosts(home)
    kh.write_text(entry(f"[127.0.0.1]:{target.port}", target))
    subprocess.run(["ssh-keygen", "-H", "-f", str(kh)], check=True, capture_output=True)  # OpenSSH hashes
    assert kh.read_text().startswith("|1|") and "127.0.0.1" not in kh.read_text()
    assert run(inventory("hv"), "whoami") == ["root"]


# -- unknown and changed keys through an alias, a DNS name, HostKeyAlias ----------------------

def test_unknown_key_through_alias_then_trusted_where_ssh_finds_it(home, target):
    cfg = ssh_config_file(home, f"""
        Host hvalias
            HostName 127.0.0.1
            Port {target.port}
            IdentityFile {target.client_key}
    """)
    with pytest.raises(HostKeyUnknown) as info:
        run(inventory("hvalias"))
    err = info.value
    assert (err.host, err.address, err.port) == ("box", "hvalias", target.port)
    assert err.fingerprint == fingerprint(target)
    assert f"`ssh-keyscan -p {target.port} 127.0.0.1 | ssh-keygen -lf -`" in str(err)
    assert str(err).count(". ") == 0 and "Traceback" not in str(err)       # one sentence
    written = trust_host_key(err.address, err.port, err.key_line)
    assert written == user_known_hosts(home)
    assert found_by_ssh_keygen(written, f"[127.0.0.1]:{target.port}")
    assert run(inventory("hvalias"), "whoami") == ["root"]
    # the OpenSSH client accepts the recorded key with strict checking (it ignores $HOME, so
    # the file is named explicitly)
    ssh = subprocess.run(["ssh", "-F", str(cfg), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                          "-o", f"UserKnownHostsFile={written}", "-o", "GlobalKnownHostsFile=/dev/null",
                          "hvalias", "true"], capture_output=True, text=True, timeout=20)
    assert ssh.returncode == 0, ssh.stderr


def test_changed_key_through_alias_is_refused(home, target, tmp_path):
    ssh_config_file(home, f"""
        Host hvalias
            HostName 127.0.0.1
            Port {target.port}
            IdentityFile {target.client_key}
    """)
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kt, kb = other.with_suffix(".pub").read_text().split()[:2]
    user_known_hosts(home).write_text(f"[127.0.0.1]:{target.port} {kt} {kb}\n")
    with pytest.raises(HostKeyChanged, match="HOST KEY CHANGED") as info:
        run(inventory("hvalias"))
    assert info.value.fingerprint == fingerprint(target) and "hvalias" in str(info.value)


def test_hash_known_hosts_records_hashed(home, target):
    ssh_config_file(home, f"""
        Host hv
            HostName 127.0.0.1
            Port {target.port}
            IdentityFile {target.client_key}
            HashKnownHosts yes
    """)
    with pytest.raises(HostKeyUnknown) as info:
        run(inventory("hv"))
    written = trust_host_key(info.value.address, info.value.port, info.value.key_line)
    text = written.read_text()
    assert text.startswith("|1|") and "127.0.0.1" not in text
    assert found_by_ssh_keygen(written, f"[127.0.0.1]:{target.port}")
    assert run(inventory("hv"), "whoami") == ["root"]


def test_dns_name_works_like_an_ip(home, target):
    """`localhost` resolves through the resolver (sshd listens on 127.0.0.1 only)."""
    with pytest.raises(HostKeyUnknown) as info:
        run(inventory("localhost", port=target.port, ssh=SshDefaults(identity=str(target.client_key))))
    err = info.value
    assert err.address == "localhost" and f"ssh-keyscan -p {target.port} localhost" in str(err)
    written = trust_host_key(err.address, err.port, err.key_line)
    assert found_by_ssh_keygen(written, f"[localhost]:{target.port}")
    assert not found_by_ssh_keygen(written, f"[127.0.0.1]:{target.port}")   # CheckHostIP no
    assert run(inventory("localhost", port=target.port,
                         ssh=SshDefaults(identity=str(target.client_key))), "whoami") == ["root"]


def test_check_host_ip(home, target, tmp_path):
    """CheckHostIP yes: trusting records the address too; a different key recorded for the
    address is refused even though the name's entry matches."""
    ssh_config_file(home, "Host localhost\n    CheckHostIP yes\n")
    inv = inventory("localhost", port=target.port, ssh=SshDefaults(identity=str(target.client_key)))
    with pytest.raises(HostKeyUnknown) as info:
        run(inv)
    written = trust_host_key(info.value.address, info.value.port, info.value.key_line)
    assert found_by_ssh_keygen(written, f"[localhost]:{target.port}")
    assert found_by_ssh_keygen(written, f"[127.0.0.1]:{target.port}")
    assert run(inv, "whoami") == ["root"]
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kt, kb = other.with_suffix(".pub").read_text().split()[:2]
    written.write_text(entry(f"[localhost]:{target.port}", target) + f"[127.0.0.1]:{target.port} {kt} {kb}\n")
    with pytest.raises(HostKeyChanged, match="CheckHostIP"):
        run(inv)
    ssh_config_file(home, "Host localhost\n    CheckHostIP no\n")
    assert run(inv, "whoami") == ["root"]


def test_host_key_alias_names_the_entry(home, target):
    ssh_config_file(home, f"""
        Host hv
            HostName 127.0.0.1
            Port {target.port}
            IdentityFile {target.client_key}
            HostKeyAlias hv-key
    """)
    user_known_hosts(home).write_text(entry(f"[127.0.0.1]:{target.port}", target))
    with pytest.raises(HostKeyUnknown) as info:
        run(inventory("hv"))
    written = trust_host_key(info.value.address, info.value.port, info.value.key_line)
    assert found_by_ssh_keygen(written, f"[hv-key]:{target.port}")
    assert run(inventory("hv"), "whoami") == ["root"]


# -- ProxyJump --------------------------------------------------------------------------------

def jump_config(home: Path, target, jump) -> None:
    ssh_config_file(home, f"""
        Host jumpbox
            HostName 127.0.0.1
            Port {jump.port}
            IdentityFile {jump.client_key}
        Host hv
            HostName 127.0.0.1
            Port {target.port}
            IdentityFile {target.client_key}
            ProxyJump jumpbox
    """)


def test_proxy_jump_with_the_jump_key_in_the_inventory_file(home, target, jump, tmp_path):
    jump_config(home, target, jump)
    user_known_hosts(home).write_text(entry(f"[127.0.0.1]:{target.port}", target))
    inv_known = tmp_path / "inventory_known_hosts"            # the jump's key is only here
    inv_known.write_text(entry(f"[127.0.0.1]:{jump.port}", jump))
    inv = inventory("hv", ssh=SshDefaults(known_hosts=str(inv_known)))
    assert run(inv, "whoami") == ["root"]
    # the way in is the jump sshd: without it there is none
    stop_pid(jump.pid)
    with pytest.raises(HostError, match="jump host jumpbox"):
        run(inv, "true")


def test_proxy_jump_unknown_jump_key_then_trusted(home, target, jump, tmp_path):
    jump_config(home, target, jump)
    user_known_hosts(home).write_text(entry(f"[127.0.0.1]:{target.port}", target))
    inv_known = tmp_path / "inventory_known_hosts"
    inv_known.write_text("")
    inv = inventory("hv", ssh=SshDefaults(known_hosts=str(inv_known)))
    with pytest.raises(HostKeyUnknown) as info:
        run(inv)
    err = info.value
    assert err.jump and (err.host, err.address, err.port) == ("box", "jumpbox", jump.port)
    assert err.fingerprint == fingerprint(jump) and "jump host jumpbox" in str(err)
    trust_host_key(err.address, err.port, err.key_line, inv_known)      # what the console does
    assert found_by_ssh_keygen(inv_known, f"[127.0.0.1]:{jump.port}")
    assert run(inv, "whoami") == ["root"]


def test_proxy_jump_target_key_unknown_names_a_command_run_on_the_jump(home, target, jump):
    jump_config(home, target, jump)
    user_known_hosts(home).write_text(entry(f"[127.0.0.1]:{jump.port}", jump))
    with pytest.raises(HostKeyUnknown) as info:
        run(inventory("hv"))
    err = info.value
    assert not err.jump and err.address == "hv" and err.fingerprint == fingerprint(target)
    assert f"ssh jumpbox 'ssh-keyscan -p {target.port} 127.0.0.1' | ssh-keygen -lf -" in str(err)


# -- the CLI refuses in one sentence; the console asks ------------------------------------------

def test_cli_refuses_an_unknown_key_with_the_command_to_verify_it(home, target, tmp_path):
    ssh_config_file(home, f"""
        Host hvalias
            HostName 127.0.0.1
            Port {target.port}
            IdentityFile {target.client_key}
    """)
    inv_path = save(Inventory(hosts=(HostConfig(name="hv1", address="hvalias", domain_type="qemu"),)),
                    tmp_path / "inventory.toml")
    env = dict(os.environ, HOME=str(home), PYTHONPATH=str(ROOT))
    code = ("import sys; from virtdeck.backends import ssh_config as c; from pathlib import Path; "
            f"c.SYSTEM_CONFIG = Path({str(ssh_config.SYSTEM_CONFIG)!r}); "
            f"c.DEFAULT_GLOBAL_KNOWN_HOSTS = (Path({str(ssh_config.DEFAULT_GLOBAL_KNOWN_HOSTS[0])!r}),); "
            "from virtdeck.console.cli import main; sys.exit(main(sys.argv[1:]))")
    res = subprocess.run([sys.executable, "-c", code, "--config", str(inv_path), "vm", "list"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr and "does not appear to be an IPv4" not in res.stderr
    assert f"unknown host key {fingerprint(target)}" in res.stderr
    assert f"`ssh-keyscan -p {target.port} 127.0.0.1 | ssh-keygen -lf -`" in res.stderr


def test_console_prompts_for_an_alias_and_records_it_in_the_inventory_file(home, target, tmp_path):
    from virtdeck.console.live import LiveModel
    from virtdeck.console.model import HOST_HOSTKEY
    ssh_config_file(home, f"""
        Host hvalias
            HostName 127.0.0.1
            Port {target.port}
            IdentityFile {target.client_key}
    """)
    inv_known = tmp_path / "inventory_known_hosts"
    inv_known.write_text("")
    inv = Inventory(hosts=(HostConfig(name="box", address="hvalias", libvirt_socket="/nonexistent/sock",
                                      domain_type="qemu"),), ssh=SshDefaults(known_hosts=str(inv_known)))
    live = LiveModel(inv).start()
    try:
        assert live.wait_ready(15)
        assert live.snapshot().host("box").state == HOST_HOSTKEY
        (req,) = live.host_key_requests()
        assert (req.address, req.port, req.fingerprint) == ("hvalias", target.port, fingerprint(target))
        live.trust_host_key("box")
        assert found_by_ssh_keygen(inv_known, f"[127.0.0.1]:{target.port}")
        # past SSH now; libvirt is not there, so the host is unreachable (not asked again)
        wait_for(lambda: live.snapshot().host("box").state not in (HOST_HOSTKEY, "connecting"), 10, "past SSH")
        assert "host key" not in (live.snapshot().host("box").error or "")
    finally:
        live.stop()


def test_an_entry_for_port_22_does_not_vouch_for_another_port(home, target):
    """OpenSSH looks up `[host]:port` only; asyncssh alone falls back to the bare `host`."""
    user_known_hosts(home).write_text(entry("127.0.0.1", target))
    inv = inventory("127.0.0.1", port=target.port, ssh=SshDefaults(identity=str(target.client_key)))
    with pytest.raises(HostKeyUnknown):
        run(inv)


def test_inventory_leaves_user_and_port_unset_unless_written(tmp_path):
    from virtdeck.config.inventory import load
    p = tmp_path / "inv.toml"
    p.write_text('[[hosts]]\nname = "hv1"\naddress = "hvalias"\n\n[[hosts]]\nname = "hv2"\n'
                 'address = "hv2.example"\nuser = "ops"\nport = 2222\n')
    hv1, hv2 = load(p).hosts
    assert (hv1.user, hv1.port) == (None, None) and (hv2.user, hv2.port) == ("ops", 2222)


def test_malformed_ssh_config_is_one_error_naming_the_line(home):
    ssh_config_file(home, "Host hv\n    Port twenty-two\n")
    with pytest.raises(HostError, match=r"ssh_config for hv: .*config line 2"):
        run(inventory("hv"))
