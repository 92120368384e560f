"""Bad operator input (issue 16 item 6): each case ends in one sentence naming the field, a
non-zero exit, and nothing created. Real ovsdb-server (``nb_server``) where OVN is involved; no
hypervisor is needed: every refusal here happens before a host is asked anything.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from passlib.hash import sha512_crypt

from virtdeck.backends.ovn import networks as ovn_networks, rows as ovn_rows
from virtdeck.config import inventory as inv_mod
from virtdeck.console import cloudinit
from virtdeck.console.cli import main
from virtdeck.console.errors import ConfigError, ValidationError
from virtdeck.console.services import image_checks
from virtdeck.console.services.network_fields import check_cidr
from virtdeck.console.services.provision_checks import check_ip

SHA = "0" * 64


def one_line(err: str) -> str:
    """The CLI's refusal: exactly one line, no traceback."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def env(nb_server, tmp_path, audit_log):
    """An inventory on the throwaway NB with tenant 'demo' (one known tenant), template
    'tiny', no hypervisor; one overlay network demo/net1 10.46.0.0/24 (gateway .1)."""
    inv = tmp_path / "inventory.toml"
    inv.write_text(f'[ovn]\nconnection = "{nb_server.unix}"\n\n[[tenants]]\nname = "demo"\n\n'
                   f'[[templates]]\nname = "tiny"\npool = "virtdeck"\nvolume = "tiny.qcow2"\nsha256 = "{SHA}"\n')
    from virtdeck.backends.session import open_nb
    api = open_nb(nb_server.unix)
    ovn_networks.create_network(api, ovn_networks.NetworkSpec(
        tenant="demo", name="net1", kind="overlay", cidr="10.46.0.0/24", gateway="10.46.0.1"))
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    before = ovn_rows.virtdeck_rows(api)
    yield {"inv": str(inv), "key": f"{key}.pub", "api": api, "before": before, "dir": tmp_path}
    api.ovsdb_connection.stop(timeout=2)


def create_argv(env, *extra, pw=None):
    return ["--config", env["inv"], "vm", "create", "bad1", "--tenant", "demo", "--template", "tiny",
            "--vcpus", "1", "--ram", "256", "--disk", "3", "--network", "net1", "--ssh-key", env["key"],
            "--password-hash", pw or sha512_crypt.hash("a-good-password"), *extra]


# ------------------------------------------------------------------ --user-data, --password-hash

def test_user_data_missing_binary_directory(env, capsys):
    d = env["dir"]
    (d / "bin.dat").write_bytes(bytes(range(256)) * 4)
    (d / "latin1.yaml").write_bytes("#cloud-config\nfinal_message: caf\xe9\n".encode("latin-1"))
    for path, words in ((d / "nope.yaml", "no such file"), (d / "bin.dat", "is binary"),
                        (d / "latin1.yaml", "not UTF-8"), (d, "is a directory")):
        assert main(create_argv(env, "--user-data", str(path), "--dry-run")) == 2
        line = one_line(capsys.readouterr().err)
        assert line.startswith("virtdeck: user-data:") and words in line, line
    assert ovn_rows.virtdeck_rows(env["api"]) == env["before"]


@pytest.mark.parametrize("bad", ["$6$", "$6$salt$", "$6$salt$short", "$6$rounds=5000$", "$5$abc$def",
                                 "x" * 106])
def test_password_hash_must_be_complete(env, capsys, bad):
    assert main(create_argv(env, "--dry-run", pw=bad)) == 2
    line = one_line(capsys.readouterr().err)
    assert "password-hash: must be a complete SHA-512 crypt hash" in line
    with pytest.raises(ValidationError):
        cloudinit.validate_password_hash(bad)
    good = sha512_crypt.hash("another-password")
    assert cloudinit.validate_password_hash(good) == good


# ------------------------------------------------------------------ --ip (dry run and create)

@pytest.mark.parametrize("ip,words", [
    ("10.99.0.5", "outside network net1's subnet 10.46.0.0/24"),
    ("10.46.0.1", "is network net1's gateway"),
    ("10.46.0.255", "broadcast address"),
    ("10.46.0.0", "network address"),
    ("abc", "'abc' is not an IPv4 address"),
    ("fe80::1", "is an IPv6 address; network net1 is IPv4"),
])
def test_ip_checked_by_dry_run_and_create(env, capsys, ip, words):
    assert main(create_argv(env, "--ip", ip, "--dry-run")) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("virtdeck: ip: ") and words in line, line
    # the create: its progress line for the validate step, then the verdict; no step ran
    assert main(create_argv(env, "--ip", ip, "--no-start")) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert [ln.split()[:3] for ln in lines[:-1]] == [["[FAILED]", "validate", "ip:"]], lines
    assert words in lines[-1] and "failed at step 'validate'" in lines[-1] and "nothing was left behind" in lines[-1]
    assert ovn_rows.virtdeck_rows(env["api"]) == env["before"]  # no LSP was made


def test_check_ip_accepts_host_addresses():
    net = ovn_networks.NetworkInfo.__new__(ovn_networks.NetworkInfo)
    object.__setattr__(net, "name", "n")
    object.__setattr__(net, "cidr", "10.1.0.0/29")
    object.__setattr__(net, "gateway", "10.1.0.1")
    assert [check_ip(v, net) for v in ("10.1.0.2", "10.1.0.6", "auto", None, "dynamic")] == \
        ["10.1.0.2", "10.1.0.6", None, None, "dynamic"]


# ------------------------------------------------------------------ network create

@pytest.mark.parametrize("args,field,words", [
    (["-t", "nosuch", "--cidr", "10.7.0.0/24"], "tenant", "no tenant 'nosuch' in the inventory (tenants: demo)"),
    (["-t", "demo", "--cidr", "224.0.0.0/24"], "cidr", "multicast"),
    (["-t", "demo", "--cidr", "240.0.0.0/24"], "cidr", "reserved"),
    (["-t", "demo", "--cidr", "127.0.0.0/24"], "cidr", "loopback"),
    (["-t", "demo", "--cidr", "10.7.0.0/24", "--vlan", "100"], "vlan", "an overlay network has no VLAN"),
    (["-t", "demo", "--cidr", "10.7.0.0/24", "--physnet", "physnet1"], "physnet", "an overlay network has no physnet"),
])
def test_network_create_refusals(env, capsys, args, field, words):
    assert main(["--config", env["inv"], "network", "create", "web", *args]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"virtdeck: {field}: ") and words in line, line
    assert ovn_rows.virtdeck_rows(env["api"]) == env["before"]


def test_cidr_rule_keeps_private_and_documentation_ranges():
    for ok in ("10.0.0.0/8", "172.16.0.0/12", "192.168.10.0/24", "100.64.0.0/10", "192.0.2.0/24"):
        assert str(check_cidr(ok)) == ok
    with pytest.raises(ValidationError, match="is reserved"):
        check_cidr("255.0.0.0/8")


# ------------------------------------------------------------------ template add

def test_image_rule(tmp_path):
    empty = tmp_path / "empty.img"
    empty.write_bytes(b"")
    rnd = tmp_path / "random.img"
    rnd.write_bytes(os.urandom(1 << 20))
    vmdk = tmp_path / "disk.vmdk"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", str(vmdk), "16M"], check=True)
    for path, words in ((empty, "is empty (0 bytes)"), (rnd, "raw data with no partition table and no filesystem"),
                        (vmdk, "is a vmdk image; convert it first: qemu-img convert -O qcow2")):
        with pytest.raises(ValidationError, match="^image: ") as exc:
            image_checks.check_image(path)
        assert words in str(exc.value)
    qcow = tmp_path / "ok.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow), "64M"], check=True)
    assert image_checks.check_image(qcow) == "qcow2"
    ext4 = tmp_path / "rootfs.raw"
    ext4.write_bytes(b"\0" * (8 << 20))
    subprocess.run(["mkfs.ext4", "-q", "-F", str(ext4)], check=True)
    assert image_checks.check_image(ext4) == "raw"
    # a qcow2 whose header survived but whose tables are garbage: qemu-img check finds it
    broken = tmp_path / "broken.qcow2"
    data = bytearray(qcow.read_bytes())
    data[0x30000:0x30000 + 4096] = os.urandom(4096)
    data[0x20000:0x20000 + 4096] = b"\xff" * 4096  # the L1/refcount area of a fresh image
    broken.write_bytes(bytes(data))
    try:
        image_checks.check_image(broken)
    except ValidationError as exc:
        assert "damaged qcow2" in str(exc) or "cannot read" in str(exc)


def test_template_add_refuses_before_upload(env, capsys, tmp_path):
    empty = tmp_path / "zero.qcow2"
    empty.write_bytes(b"")
    rnd = tmp_path / "random.qcow2"
    rnd.write_bytes(os.urandom(1 << 20))
    for path in (empty, rnd):
        assert main(["--config", env["inv"], "template", "add", "junk", str(path)]) == 2
        line = one_line(capsys.readouterr().err)
        assert line.startswith("virtdeck: image: "), line
    assert [t.name for t in inv_mod.load(env["inv"]).templates] == ["tiny"]  # not recorded


# ------------------------------------------------------------------ inventory

@pytest.mark.parametrize("body,key", [
    ('[[hosts]]\nname = "hv1"\naddress = "127.0.0.1"\nuser = ""\n', "hosts[0].user"),
    ('[[hosts]]\nname = "hv1"\naddress = "127.0.0.1"\nuser = "-oProxyCommand=x"\n', "hosts[0].user"),
    ('[[tenants]]\nname = "demo"\nmax_vms = -1\n', "tenants[0].max_vms"),
    ('[[tenants]]\nname = "demo"\nmax_vcpus = -4\n', "tenants[0].max_vcpus"),
    ('[[tenants]]\nname = "demo"\nmax_ram_mib = -1\n', "tenants[0].max_ram_mib"),
])
def test_inventory_refuses_at_load(tmp_path, body, key):
    path = tmp_path / "inventory.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as exc:
        inv_mod.load(path)
    assert key in str(exc.value) and "\n" not in str(exc.value)
    path.write_text(body.replace('user = ""', 'user = "root"').replace("-1", "0").replace("-4", "2")
                    .replace('"-oProxyCommand=x"', '"ops.admin"'))
    inv_mod.load(path)  # the same file with allowed values loads
