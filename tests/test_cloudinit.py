"""Seed documents (console/cloudinit.py): validation as you type, hashed passwords, merge rules."""

from __future__ import annotations

import base64
import struct
import subprocess

import pytest
import yaml
from passlib.hash import sha512_crypt

from virtdeck.console import cloudinit as ci
from virtdeck.console.errors import ValidationError


def make_key(kind="ssh-ed25519", inner=None, comment="op@jump"):
    inner = inner or kind
    blob = struct.pack(">I", len(inner)) + inner.encode() + struct.pack(">I", 32) + b"\x01" * 32
    return f"{kind} {base64.b64encode(blob).decode()} {comment}"


KEY = make_key()


def test_real_ssh_keygen_key_is_accepted(tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    line = (tmp_path / "k.pub").read_text()
    assert ci.validate_ssh_key(line) == line.strip()
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(tmp_path / "r")], check=True)
    assert ci.parse_ssh_keys((tmp_path / "r.pub").read_text() + "\n# c\n\n" + line) != []


@pytest.mark.parametrize("line,why", [
    ("", "looks like"),
    ("ssh-foo AAAA x", "unknown key type"),
    ("ssh-ed25519 !!!notbase64", "does not decode"),
    (make_key("ssh-ed25519", inner="ssh-rsa"), "not ssh-ed25519"),
])
def test_bad_ssh_keys(line, why):
    with pytest.raises(ValidationError) as e:
        ci.validate_ssh_key(line)
    assert e.value.field == "ssh-keys" and why in e.value.reason


def test_parse_ssh_keys_names_the_line():
    with pytest.raises(ValidationError, match="line 2"):
        ci.parse_ssh_keys(KEY + "\nnonsense\n")
    with pytest.raises(ValidationError, match="at least one"):
        ci.parse_ssh_keys("\n# only a comment\n")
    assert ci.parse_ssh_keys("", required=False) == []


@pytest.mark.parametrize("name,ok", [
    ("web1", True), ("a", True), ("a-b-c", True), ("x" * 63, True),
    ("", False), ("-web", False), ("web-", False), ("Web", False), ("web_1", False), ("x" * 64, False),
])
def test_hostname_rules(name, ok):
    if ok:
        assert ci.validate_hostname(name) == name
    else:
        with pytest.raises(ValidationError):
            ci.validate_hostname(name)


@pytest.mark.parametrize("name,ok", [("debian", True), ("_svc", True), ("ops-1", True),
                                      ("root", False), ("1abc", False), ("Bob", False), ("", False)])
def test_username_rules(name, ok):
    if ok:
        assert ci.validate_username(name) == name
    else:
        with pytest.raises(ValidationError):
            ci.validate_username(name)


def test_password_is_hashed_sha512():
    h = ci.hash_password("correct horse")
    assert h.startswith("$6$") and "correct horse" not in h
    assert sha512_crypt.verify("correct horse", h)
    assert ci.validate_password_hash(h) == h
    with pytest.raises(ValidationError, match="8 characters"):
        ci.hash_password("short")
    with pytest.raises(ValidationError, match="required"):
        ci.hash_password("")
    with pytest.raises(ValidationError):
        ci.validate_password_hash("$1$md5$whatever")
    with pytest.raises(ValidationError):
        ci.validate_password_hash("plaintext")


def test_extra_user_data_validation():
    assert ci.parse_extra_user_data("") == {}
    assert ci.parse_extra_user_data("#cloud-config\n") == {}
    assert ci.parse_extra_user_data("#cloud-config\npackages: [htop]\n") == {"packages": ["htop"]}
    with pytest.raises(ValidationError, match=r"line 2, column \d+"):
        ci.parse_extra_user_data("a: 1\nb: : x\nc: 3\n")
    with pytest.raises(ValidationError, match="mapping"):
        ci.parse_extra_user_data("- a\n- b\n")
    with pytest.raises(ValidationError, match="scripts"):
        ci.parse_extra_user_data("#!/bin/sh\necho hi\n")
    with pytest.raises(ValidationError, match="clear text"):
        ci.parse_extra_user_data("password: hunter22\n")
    with pytest.raises(ValidationError, match="clear-text"):
        ci.parse_extra_user_data("chpasswd:\n  list: |\n    root:x\n")
    with pytest.raises(ValidationError, match="type 'hash'"):
        ci.parse_extra_user_data("chpasswd:\n  users:\n  - {name: root, password: x, type: text}\n")
    with pytest.raises(ValidationError, match="plain_text_passwd"):
        ci.parse_extra_user_data("users:\n- {name: bob, plain_text_passwd: x}\n")
    with pytest.raises(ValidationError, match="crypt hash"):
        ci.parse_extra_user_data("users:\n- {name: bob, passwd: hunter22}\n")
    with pytest.raises(ValidationError, match="16 KiB"):
        ci.parse_extra_user_data("a: " + "x" * 17000)


def test_user_data_document():
    h = ci.hash_password("correct horse")
    extra = ci.parse_extra_user_data(
        "packages: [htop]\nruncmd:\n- [touch, /root/marker]\nusers:\n- {name: ops, shell: /bin/sh}\n"
        "write_files:\n- {path: /etc/motd, content: hi}\n")
    text = ci.build_user_data("web1", "debian", h, [KEY], extra)
    assert text.startswith("#cloud-config\n")
    doc = yaml.safe_load(text)
    assert doc["hostname"] == "web1"
    u = doc["users"][0]
    assert u["name"] == "debian" and u["hashed_passwd"] == h and u["lock_passwd"] is False
    assert u["ssh_authorized_keys"] == [KEY] and u["sudo"] == ci.DEFAULT_SUDO
    assert doc["users"][1] == {"name": "ops", "shell": "/bin/sh"}  # appended, ours first
    assert doc["packages"] == ["htop"] and doc["runcmd"] == [["touch", "/root/marker"]]
    assert "correct horse" not in text
    assert "&id" not in text and "*id" not in text  # no YAML aliases


def test_merge_rules():
    base = {"a": {"x": 1, "l": [1]}, "s": "base", "users": [{"name": "debian"}]}
    out = ci.merge_user_data(base, {"a": {"y": 2, "l": [2]}, "s": "extra"})
    assert out == {"a": {"x": 1, "l": [1, 2], "y": 2}, "s": "extra", "users": [{"name": "debian"}]}
    assert base["a"]["l"] == [1]  # base untouched
    with pytest.raises(ValidationError, match="default user"):
        ci.merge_user_data(base, {"users": [{"name": "debian"}]})


def test_meta_and_network_config():
    meta = yaml.safe_load(ci.build_meta_data("i-0123", "web1"))
    assert meta == {"instance-id": "i-0123", "local-hostname": "web1"}
    net = yaml.safe_load(ci.build_network_config(["52:54:00:AA:bb:01", "52:54:00:aa:bb:02"]))
    assert net == {"version": 2, "ethernets": {
        "nic0": {"match": {"macaddress": "52:54:00:aa:bb:01"}, "dhcp4": True},
        "nic1": {"match": {"macaddress": "52:54:00:aa:bb:02"}, "dhcp4": True}}}
    with pytest.raises(ValidationError):
        ci.build_network_config(["not-a-mac"])


def test_build_seed_and_preview_show_only_the_hash():
    h = ci.hash_password("correct horse")
    seed = ci.build_seed("web1", "debian", h, [KEY], ["52:54:00:00:00:01"])
    assert seed.instance_id.startswith("i-") and len(seed.instance_id) == 18
    assert ci.build_seed("web1", "debian", h, [KEY], ["52:54:00:00:00:01"]).instance_id != seed.instance_id
    p = seed.preview()
    assert "# meta-data" in p and "# user-data" in p and "# network-config" in p
    assert h in p and "correct horse" not in p
    with pytest.raises(ValidationError):
        ci.build_seed("Bad Name", "debian", h, [KEY], [])
