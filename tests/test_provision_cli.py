"""`virtdeck vm create` through the real CLI entry point, on the lab (no guest boot: --no-start)."""

from __future__ import annotations

import io
import json
import subprocess
import uuid

import pytest

from virtdeck.backends.ovn import networks as ovn_networks, security_groups as ovn_sg
from virtdeck.config.inventory import save
from virtdeck.console.cli import main
from provision_helpers import lab_inventory, lab_session, leftovers, remove_vm, roomy  # noqa: F401

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def env(lab_session, lab_inventory, tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / "id")], check=True)
    inv = d / "inventory.toml"
    save(roomy(lab_inventory), inv)  # not a capacity test: other engineers' domains must not fill it
    t = f"t4c{uuid.uuid4().hex[:6]}"
    nb = lab_session.nb()
    ovn_networks.create_network(nb, ovn_networks.NetworkSpec(
        tenant=t, name="net1", kind="overlay", cidr="10.46.0.0/24", gateway="10.46.0.1"))
    yield {"inv": str(inv), "key": str(d / "id.pub"), "tenant": t, "dir": d}
    ovn_networks.delete_network(nb, t, "net1", cascade=True)
    for sg in ovn_sg.list_security_groups(nb, t):
        ovn_sg.delete_security_group(nb, t, sg.name)


def argv(env, name, *extra):
    return ["--config", env["inv"], "vm", "create", name, "--tenant", env["tenant"], "--template", "debian12",
            "--vcpus", "1", "--ram", "256", "--disk", "3", "--network", "net1", "--ssh-key", env["key"],
            "--password-stdin", *extra]


def test_create_json_and_dry_run(env, lab_session, lab_inventory, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("VIRTDECK_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    name = f"t4-{uuid.uuid4().hex[:6]}"
    monkeypatch.setattr("sys.stdin", io.StringIO("cli-password\n"))
    assert main(argv(env, name, "--dry-run")) == 0
    out = capsys.readouterr().out
    assert "placement (spread):" in out and "hashed_passwd: $6$" in out and "cli-password" not in out
    assert leftovers(lab_session, lab_inventory, env["tenant"], name)["volumes"] == []
    try:
        monkeypatch.setattr("sys.stdin", io.StringIO("cli-password\n"))
        rc = main(argv(env, name, "--no-start", "--json", "--ip", "10.46.0.77"))
        cap = capsys.readouterr()
        assert rc == 0, cap.err
        res = json.loads(cap.out)
        assert res["name"] == name and res["host"] in ("hv1", "hv2") and res["running"] is False
        assert res["ports"][0]["ip"] == "10.46.0.77"
        assert {r["host"] for r in res["placement"]} == {"hv1", "hv2"}
        for step in ("validate", "placement", "disk", "seed", "ports", "domain", "define"):
            assert f"{step:<9}" in cap.err
        assert "cli-password" not in (tmp_path / "audit.jsonl").read_text()
        # the same name again: refused at placement, exit 4 (exists), JSON names the step
        monkeypatch.setattr("sys.stdin", io.StringIO("cli-password\n"))
        rc = main(argv(env, name, "--json"))
        fail = json.loads(capsys.readouterr().out)
        assert rc == 4 and fail["step"] == "placement" and "already exists" in fail["error"]
    finally:
        remove_vm(lab_session, lab_inventory, env["tenant"], name)


def test_bad_options(env, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(argv(env, "t4-x")) == 2
    assert "password: use at least 8 characters" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("long-enough\n"))
    assert main(argv(env, "t4-x", "--ip", "a", "--ip", "b")) == 2
    assert "one --ip per --network" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    args = [a for a in argv(env, "t4-x") if a != "--password-stdin"]
    assert main(args) == 2
    assert "--password-stdin or --password-hash" in capsys.readouterr().err
