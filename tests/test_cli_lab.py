"""The command line against the lab, through the real `virtdeck` script (subprocess): each exit
code of the table, a partial listing (a hypervisor that does not answer), every listing within
80 columns with long names, and every verb of the registry printing JSON that parses.

No guest boots: the running VM is a bare domain (no disk, 64 MiB: SeaBIOS finds nothing to boot
and idles), the stopped one is defined the way provisioning builds one (vm_lab_helpers.make_vm)
and never started. Everything runs on a temporary copy of the lab's inventory, with names that
carry a unique tag, and is removed afterwards. Costs ~1-2 minutes of CI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from virtdeck.backends import domain_xml
from virtdeck.backends.ovn import networks as ovn_networks
from virtdeck.config.inventory import HostConfig, TenantConfig, load, save
from virtdeck.console import verbs
from virtdeck.console.errors import ExitCode
from provision_helpers import lab_inventory, lab_session, roomy  # noqa: F401 (fixtures)
from vm_lab_helpers import TENANT, make_vm

pytestmark = pytest.mark.lab

VIRTDECK = str(Path(sys.executable).with_name("virtdeck"))
TAG = "cli" + uuid.uuid4().hex[:5]
LONG = "-long-name-that-no-column-of-an-80-column-table-can-hold"
BARE = f"{TAG}{LONG}"            # the running bare domain on hv1 (long name on purpose)
VM = f"{TAG}-vm"                 # the defined, never started VM
NET = f"{TAG}-net"               # its overlay network (tenant vmops)
NET2 = f"{TAG}-n2{LONG}"[:63].rstrip("-")    # made and removed by the CLI steps
EXT = f"{TAG}-ext"               # a provider network for the router's gateway
ROUTER = f"{TAG}-r{LONG}"[:63].rstrip("-")
SG = f"{TAG}-sg"
TPL = f"{TAG}-tpl{LONG}"[:63].rstrip("-")


def bare_xml(name: str) -> str:
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <currentMemory unit='MiB'>64</currentMemory>
  <vcpu>1</vcpu>
  <metadata>{domain_xml.ET.tostring(domain_xml._meta_element(domain_xml.InstanceMeta(TENANT)), encoding='unicode')}</metadata>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <features><acpi/></features>
  <devices><serial type='pty'/><console type='pty'/></devices>
</domain>"""


@pytest.fixture(scope="module")
def inv(lab_inventory, tmp_path_factory):
    """A roomy copy of the lab's inventory (host and template verbs write to it), with the test
    tenant and a quota, and no placement pressure filter."""
    path = tmp_path_factory.mktemp("cli") / "inventory.toml"
    i = roomy(lab_inventory)
    tenants = tuple(t for t in i.tenants if t.name != TENANT) + (TenantConfig(TENANT, max_vms=500, max_vcpus=900),)
    # the shared lab's CPU is busy with everyone's tests: pressure is not what these tests are about
    metrics = replace(i.metrics, cpu_threshold=100.0, ram_threshold=100.0)
    save(replace(i, tenants=tenants, metrics=metrics), path)
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli-env")
    return dict(os.environ, VIRTDECK_AUDIT_LOG=str(d / "audit.jsonl"), XDG_CACHE_HOME=str(d / "cache"),
                VIRTDECK_CONNECT_TIMEOUT="5")


@pytest.fixture(scope="module")
def cloud(lab_session, lab_inventory):
    """The bare running domain on hv1, the stopped VM on its own network; removed afterwards."""
    from virtdeck.console.services import vm_delete
    nb = lab_session.nb()
    third = 100 + int(TAG[3:5], 16) % 100
    net = ovn_networks.create_network(nb, ovn_networks.NetworkSpec(
        tenant=TENANT, name=NET, kind="overlay", cidr=f"10.{third}.7.0/24", gateway=f"10.{third}.7.1"))
    conn = lab_session.libvirt("hv1")
    dom = conn.defineXML(bare_xml(BARE))
    dom.create()
    lsp = make_vm(lab_session, lab_inventory, net, "hv1", VM, vcpus=1, memory_mib=128)
    try:
        yield {"lsp": lsp, "third": third}
    finally:
        for name in (BARE, VM):
            try:
                vm_delete.delete(lab_session, name, missing_ok=True)
            except Exception as exc:  # a cleanup must go on
                print(f"cleanup {name}: {exc}")
        for n in (NET, NET2, EXT):
            try:
                ovn_networks.delete_network(nb, TENANT, n, cascade=True)
            except Exception:
                pass


def cli(inv, env, *argv, timeout=180, stdin=subprocess.DEVNULL):
    return subprocess.run([VIRTDECK, "--config", str(inv), *argv], capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=stdin)


# ---------------------------------------------------------------------------------------------


def test_each_exit_code(inv, env, cloud, tmp_path):
    p = cli(inv, env, "vm", "list", "--host", "hv1")
    assert p.returncode == ExitCode.OK and BARE[:20] in p.stdout, p.stderr
    # 1: the host check has a fail line (nothing is written)
    p = cli(inv, env, "host", "add", f"{TAG}x", "127.0.0.1", "--port", "1")
    assert p.returncode == ExitCode.FAILED and "failed the host check" in p.stderr
    # 2: bad input, bad usage
    p = cli(inv, env, "network", "create", f"{TAG}-bad", "-t", TENANT, "--cidr", "10.0.0.0/33")
    assert p.returncode == ExitCode.USAGE and "cidr" in p.stderr.lower() and p.stderr.count("\n") == 1
    assert cli(inv, env, "vm", "list", "--bogus").returncode == ExitCode.USAGE
    # 3: not found, for each kind
    for argv in (["vm", "show", f"{TAG}-ghost"], ["network", "show", f"{TAG}-ghost", "-t", TENANT],
                 ["host", "show", f"{TAG}-ghost"], ["tenant", "show", f"{TAG}-ghost"]):
        p = cli(inv, env, *argv)
        assert p.returncode == ExitCode.NOT_FOUND and "Traceback" not in p.stderr, (argv, p.stderr)
    # 4: wrong state (move wants a stopped VM)
    p = cli(inv, env, "vm", "move", BARE, "--to", "hv2")
    assert p.returncode == ExitCode.CONFLICT and "shut it down" in p.stderr, p.stderr
    # 6: the guest (SeaBIOS, no OS) ignores the ACPI button
    p = cli(inv, env, "vm", "shutdown", BARE, "--timeout", "1")
    assert p.returncode == ExitCode.TIMEOUT and "still running" in p.stderr, p.stderr
    # 7: read-only
    p = cli(inv, env, "--readonly", "network", "create", f"{TAG}-ro", "-t", TENANT, "--cidr", "10.9.9.0/24")
    assert p.returncode == ExitCode.REFUSED and "--readonly" in p.stderr
    # 130: Ctrl-C while a verb waits
    # a foreground command gets Ctrl-C: SIGINT at its default even when this test run inherited
    # it ignored (pytest started as a background job without job control)
    proc = subprocess.Popen([VIRTDECK, "--config", str(inv), "vm", "shutdown", BARE, "--timeout", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            stdin=subprocess.DEVNULL,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(4)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED and "interrupted" in err, err


def test_partial_listing_exits_5(inv, env, cloud, tmp_path):
    """A hypervisor that does not answer: vm list prints the others' VMs, names it on stderr,
    exits 5; host list, tenant list and template list likewise."""
    part = tmp_path / "inventory.toml"
    i = load(inv)
    save(replace(i, hosts=(*i.hosts, HostConfig(name="hvdown", address="127.0.0.1", port=1, user="root"))), part)
    p = cli(part, env, "vm", "list")
    assert p.returncode == ExitCode.UNREACHABLE, p.stderr
    assert BARE[:20] in p.stdout and "hvdown not listed (partial result)" in p.stderr
    p = cli(part, env, "vm", "list", "--json")
    d = json.loads(p.stdout)
    assert p.returncode == 5 and "hvdown" in d["unreachable"] and any(v["name"] == BARE for v in d["vms"])
    p = cli(part, env, "host", "list", "-o", "yaml")
    rows = {r["name"]: r for r in yaml.safe_load(p.stdout)["hosts"]}
    assert p.returncode == 5 and rows["hvdown"]["state"] == "unreachable" and rows["hv1"]["state"] == "up"
    assert cli(part, env, "tenant", "list").returncode == 5
    p = cli(part, env, "template", "list")
    assert p.returncode == 5 and "hvdown" in p.stderr and "debian12" in p.stdout, p.stderr


def test_every_listing_fits_80_columns_with_long_names(inv, env, cloud):
    i = load(inv)
    tpl = replace(i.templates[0], name=TPL)
    save(replace(i, templates=(*i.templates, tpl)), inv)
    try:
        assert cli(inv, env, "network", "create", NET2, "-t", TENANT, "--cidr",
                   f"10.{cloud['third']}.8.0/24").returncode == 0
        assert cli(inv, env, "router", "create", ROUTER, "-t", TENANT).returncode == 0
        assert cli(inv, env, "router", "attach", ROUTER, NET2, "-t", TENANT).returncode == 0
        listings = [["vm", "list"], ["network", "list"], ["router", "list"], ["template", "list"],
                    ["host", "list"], ["host", "show", "hv1"], ["tenant", "list"], ["audit"],
                    ["network", "sg", "list"]]
        listed = {v.name for v in verbs.all_verbs() if v.leaf == "list" or v.name == "audit"}
        assert listed <= {" ".join(a) for a in listings}, "a new listing: add it here"
        for argv in listings:
            p = cli(inv, env, *argv)
            assert p.returncode == 0, (argv, p.stderr)
            lines = p.stdout.splitlines()
            assert lines and all(len(line) <= 80 for line in lines), (argv, [len(x) for x in lines], p.stdout)
            assert "\x1b[" not in p.stdout  # no colour into a pipe
        for argv, long in ((["vm", "list"], BARE), (["network", "list"], NET2), (["router", "list"], ROUTER),
                           (["template", "list"], TPL)):
            p = cli(inv, env, *argv)
            assert long not in p.stdout and long[:12] in p.stdout and "…" in p.stdout, (argv, p.stdout)
            p = cli(inv, env, *argv, "--wide")
            assert long in p.stdout, (argv, p.stdout)
    finally:
        cli(inv, env, "router", "delete", ROUTER, "-t", TENANT)
        cli(inv, env, "network", "delete", NET2, "-t", TENANT, "--cascade")
        save(i, inv)


def _tiny_image(tmp_path) -> Path:
    img = tmp_path / "tiny.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "16M"], check=True)
    return img


def test_every_verb_prints_json_that_parses(inv, env, cloud, tmp_path):
    """Walk the registry: each verb runs once with --json (in turn before the group, after it
    and after the verb) in an order that makes and removes its own objects; its stdout parses."""
    lsp, third = cloud["lsp"], cloud["third"]
    (tmp_path / "user-data").write_text("#cloud-config\npackages: [htop]\n")
    img = _tiny_image(tmp_path)
    T = ["-t", TENANT]
    #: (verb name, argv after the verb words, allowed exit codes)
    steps = [
        ("vm list", [], {0}),
        ("vm show", [VM], {0}),
        ("vm ip", [VM], {0}),
        ("vm create", [f"{TAG}-new", *T, "--template", "debian12", "--network", NET, "--ssh-key",
                       "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl t@x",
                       "--password-hash", "$6$abcdefgh$" + "x" * 86, "--dry-run"], {0, 2}),
        ("vm suspend", [BARE], {0}),
        ("vm resume", [BARE], {0}),
        ("vm reboot", [BARE, "--hard"], {0}),
        ("vm shutdown", [BARE, "--timeout", "1"], {6}),
        ("vm poweroff", [BARE], {0}),
        ("vm start", [BARE], {0}),
        ("vm resize", [VM, "--vcpus", "2", "--memory", "192", "--offline"], {0}),
        ("vm edit-config", [VM, "--file", str(tmp_path / "user-data")], {0}),
        ("vm move", [VM, "--to", "hv2"], {0}),
        ("network create", [NET2, *T, "--cidr", f"10.{third}.9.0/24"], {0}),
        ("network create", [EXT, *T, "--kind", "provider", "--physnet", "physnet1", "--vlan",
                            str(3000 + third), "--cidr", f"172.{16 + third % 16}.{third}.0/24"], {0}),
        ("network list", [*T], {0}),
        ("network show", [NET2, *T], {0}),
        ("network edit", [NET2, *T, "--dns", "9.9.9.9"], {0}),
        ("network sg create", [SG, *T, "--rule", "ingress tcp 22 from 10.0.0.0/8"], {0}),
        ("network sg rule-add", [SG, "ingress tcp 443", *T], {0}),
        ("network sg rule-del", [SG, "ingress tcp 443", *T], {0}),
        ("network sg port-add", [SG, lsp, *T], {0}),
        ("network sg list", [*T], {0}),
        ("router create", [ROUTER, *T], {0}),
        ("router attach", [ROUTER, NET, *T], {0}),
        ("router gateway", [ROUTER, EXT, "--address", f"172.{16 + third % 16}.{third}.100", "--chassis", "hv1", *T],
         {0}),
        ("router snat", [ROUTER, NET, *T], {0}),
        ("router fip", [ROUTER, f"172.{16 + third % 16}.{third}.101", "--port", lsp, *T], {0}),
        ("router list", [*T], {0}),
        ("router fip-del", [ROUTER, f"172.{16 + third % 16}.{third}.101", *T], {0}),
        ("router snat-del", [ROUTER, NET, *T], {0}),
        ("router gateway-clear", [ROUTER, *T], {0}),
        ("router detach", [ROUTER, NET, *T], {0}),
        ("router delete", [ROUTER, *T], {0}),
        ("network sg delete", [SG, *T], {0}),
        ("network delete", [NET2, *T], {0}),
        ("template add", [TPL, str(img)], {0}),
        ("template list", [], {0}),
        ("template delete", [TPL], {0}),
        ("host list", [], {0}),
        ("host show", ["hv1"], {0}),
        ("host check", ["hv1"], {0, 1}),
        ("host add", [f"{TAG}x", "127.0.0.1", "--port", "1", "--force"], {0}),
        ("host remove", [f"{TAG}x", "--force"], {0}),
        ("host disable", ["hv2", "--reason", "cli test"], {0}),
        ("host enable", ["hv2"], {0}),
        ("host drain", ["hv2"], {0}),
        ("tenant list", [], {0}),
        ("tenant show", [TENANT], {0}),
        ("audit", ["--verb", "router"], {0}),
        ("vm delete", [VM, "--yes"], {0}),
        ("check", [], {0, 1, 5}),
        ("top", [], {0, 5}),
    ]
    # verbs that print no JSON by nature: the reason is the test
    no_json = {"vm console": "the guest's serial console: its bytes, to a terminal or a pipe",
               "metrics": "serves Prometheus text over HTTP until Ctrl-C"}
    covered = {name for name, _, _ in steps} | set(no_json)
    missing = {v.name for v in verbs.all_verbs()} - covered
    assert not missing, f"verbs without a --json step here: {sorted(missing)}"
    for n, (name, rest, codes) in enumerate(steps):
        if name not in {v.name for v in verbs.all_verbs()}:
            continue  # a step for a verb another change has not landed yet
        words = name.split()
        where = n % 3
        if where == 0 or len(words) == 1:
            argv = ["--json", *words, *rest]
        elif where == 1:
            argv = [*words, *rest, "--json"]
        else:
            argv = [words[0], "--json", *words[1:], *rest]
        p = cli(inv, env, *argv, timeout=300)
        assert p.returncode in codes, (argv, p.returncode, p.stderr[-2000:])
        assert p.stdout.strip(), (argv, p.stderr[-2000:])
        json.loads(p.stdout)  # the whole of stdout is one JSON document
        assert "Traceback" not in p.stderr, (argv, p.stderr)
    # the old removal flags still work, with a warning
    assert cli(inv, env, "router", "create", ROUTER, *T).returncode == 0
    p = cli(inv, env, "router", "gateway", ROUTER, "--clear", *T)
    assert p.returncode == 0 and "deprecated: use `virtdeck router gateway-clear`" in p.stderr, p.stderr
    assert cli(inv, env, "router", "delete", ROUTER, *T).returncode == 0
