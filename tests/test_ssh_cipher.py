"""backends/ssh.py's cipher order against a real OpenSSH sshd: AES-GCM first when ssh_config
names no Ciphers (cheaper per packet in asyncssh: tests/bench/bench_forward.py), and an
operator's ``Ciphers`` line still decides when there is one."""

from __future__ import annotations

import pytest

from virtdeck.backends import ioloop, ssh_config
from virtdeck.backends.ssh import PREFERRED_CIPHERS, open_link


@pytest.fixture(autouse=True)
def isolated_ssh_config(tmp_path, monkeypatch):
    monkeypatch.setattr(ssh_config, "DEFAULT_USER_KNOWN_HOSTS", (tmp_path / "user_known_hosts",))
    monkeypatch.setattr(ssh_config, "DEFAULT_GLOBAL_KNOWN_HOSTS", (tmp_path / "global_known_hosts",))
    monkeypatch.setattr(ssh_config, "USER_CONFIG", tmp_path / "ssh_config")
    monkeypatch.setattr(ssh_config, "SYSTEM_CONFIG", tmp_path / "etc_ssh_config")


def cipher_of(sshd) -> str:
    link = ioloop.call(open_link("box", sshd.address, port=sshd.port, user=sshd.user,
                                 identity=str(sshd.client_key), known_hosts=str(sshd.known_hosts)),
                       timeout=30)
    try:
        return link.conn.get_extra_info("send_cipher")
    finally:
        ioloop.io_loop().call_soon_threadsafe(link.close)


def test_aes_gcm_first_without_a_ciphers_line(sshd):
    assert cipher_of(sshd) == PREFERRED_CIPHERS[0]


def test_ssh_config_ciphers_decide(sshd, tmp_path):
    (tmp_path / "ssh_config").write_text("Host *\n    Ciphers chacha20-poly1305@openssh.com\n")
    assert cipher_of(sshd) == "chacha20-poly1305@openssh.com"
