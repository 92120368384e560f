"""The inventory's OVN SSL and southbound keys: SSL file paths resolve against the inventory
file's directory (never the cwd), a missing file is one sentence naming the key and the file,
and ``sb_connection`` is checked like ``connection``. No server needed: these are load checks."""

from __future__ import annotations

import os

import pytest

from virtdeck.config import inventory as inv_mod
from virtdeck.console.errors import ConfigError

SSL = {"private_key": "pki/client-privkey.pem", "certificate": "pki/client-cert.pem",
       "ca_cert": "pki/cacert.pem"}


def _write(d, **ovn) -> os.PathLike:
    path = d / "inventory.toml"
    path.write_text("[ovn]\n" + "".join(f'{k} = "{v}"\n' for k, v in ovn.items()))
    return path


def _pki(d) -> None:
    (d / "pki").mkdir()
    for rel in SSL.values():
        (d / rel).write_text("-----BEGIN PLACEHOLDER-----\n")


def test_relative_ssl_paths_resolve_against_the_inventory_not_the_cwd(tmp_path, monkeypatch):
    _pki(tmp_path)
    path = _write(tmp_path, connection="ssl:192.0.2.1:6641,ssl:192.0.2.2:6641",
                  sb_connection="ssl:192.0.2.1:6642,ssl:192.0.2.2:6642", **SSL)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    ovn = inv_mod.load(path).ovn
    assert ovn.private_key == str(tmp_path / SSL["private_key"])
    assert ovn.ca_cert == str(tmp_path / SSL["ca_cert"])
    assert ovn.sb_connection == "ssl:192.0.2.1:6642,ssl:192.0.2.2:6642" and ovn.uses_ssl


@pytest.mark.parametrize("key", sorted(SSL))
def test_missing_ssl_file_names_key_and_file(tmp_path, key):
    _pki(tmp_path)
    (tmp_path / SSL[key]).unlink()
    path = _write(tmp_path, connection="ssl:192.0.2.1:6641", **SSL)
    with pytest.raises(ConfigError) as e:
        inv_mod.load(path)
    msg = str(e.value)
    assert f"ovn.{key}: no such file {tmp_path / SSL[key]}" in msg and "\n" not in msg


def test_sb_only_ssl_still_needs_all_three_files(tmp_path):
    path = _write(tmp_path, via_host="central", sb_connection="ssl:192.0.2.1:6642")
    (tmp_path / "inventory.toml").write_text(
        (tmp_path / "inventory.toml").read_text()
        + '[[hosts]]\nname = "central"\naddress = "192.0.2.1"\nhypervisor = false\n')
    with pytest.raises(ConfigError, match=r"ovn.sb_connection has an ssl: member but ovn.private_key"):
        inv_mod.load(path)


def test_sb_connection_member_shape_is_checked(tmp_path):
    path = _write(tmp_path, connection="tcp:192.0.2.1:6641", sb_connection="192.0.2.1:6642")
    with pytest.raises(ConfigError, match=r"ovn.sb_connection member '192.0.2.1:6642' must look like"):
        inv_mod.load(path)
