"""Issue 11 on the fleet-flavoured lab (`virtdeck lab up --fleet`, backends/lab/fleet.py), as its
non-root operator `vdop` reaching hosts by ssh_config alias, hv2 only through the bastion.

The shared lab is never touched: :func:`test_fleet_in_a_sandbox` brings a fleet lab up inside
`virtdeck lab sandbox` and runs this module's ``inner_*`` tests there (``VIRTDECK_FLEET_INNER=1``),
then the sandbox takes it all down. Every virtdeck call is the CLI as the operator would type it
(``HOME`` = the fleet's, whose ~/.ssh/config and inventory decide everything); the lab's root
access (``hosts.run_in``) only looks at what happened on the hosts.

Inner tests, in order (each leaves what the next one needs):
lab status says what each host is; `host check` as the operator on the healthy hosts; the fresh
hv3 (pool missing → `host add` refused → `host add --create-pool` → ok, inventory written);
the placement lock and a volume's sha256 as the operator (non-root paths); disable → placement
refuses with the reason, enable; a VM created stopped on hv1 (its root-only definition file read
through libvirt instead) and `host drain hv1 --move-to hv2`, then deleted; ovn-controller stopped on hv1 → the fail line names it.
Cost in CI: one sandbox lab of 3 hypervisors, no guest boot (~1-2 min on the busy 2-core machine).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

INNER = os.environ.get("VIRTDECK_FLEET_INNER") == "1"
inner = pytest.mark.skipif(not INNER, reason="runs inside the fleet sandbox (test_fleet_in_a_sandbox)")
VIRTDECK = str(Path(sys.executable).with_name("virtdeck"))
TENANT = "demo"  # the fleet inventory's tenant (the sandbox lab is ours alone)


def test_fleet_in_a_sandbox(capsys):
    """Bring `lab up --fleet` up in a sandbox and run the inner tests there; the sandbox ends
    with no process left."""
    if INNER:
        pytest.skip("this is the sandbox's own run")
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    from virtdeck.backends.lab.sandbox import run_sandboxed
    from virtdeck.backends.lab.image import ensure_template
    ensure_template(log=lambda m: None)  # built outside: the sandbox has no route to the mirror
    from virtdeck.backends.lab.image_disk import ensure_image
    gpt = ensure_image("debian12-gpt", log=lambda m: None)  # for `template add --url` (waits for a prebuild)
    here = Path(__file__).resolve()
    script = (f"t0=$(date +%s%N); virtdeck lab up --fleet > \"$VIRTDECK_LAB_DIR/up.log\" 2>&1 "
              f"|| {{ cat \"$VIRTDECK_LAB_DIR/up.log\"; exit 99; }}; "
              f"echo \"[fleet] lab up --fleet: $(( ($(date +%s%N) - t0) / 1000000 )) ms\"; "
              f"{sys.executable} -m pytest -q -s -p no:cacheprovider -rs {here} -k inner; rc=$?; "
              f"virtdeck lab down >/dev/null 2>&1; exit $rc")
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, VIRTDECK_FLEET_INNER="1", VIRTDECK_LAB_KEEP="",
               VIRTDECK_FLEET_GPT=f"{gpt.qcow2} {gpt.sha256}",  # inside, HOME (and its cache) is the fleet's
               PATH=f"{bindir}:{os.environ.get('PATH', '')}")
    p = run_sandboxed(["sh", "-c", script], capture=True, timeout=1200, cwd=here.parents[2], env=env)
    with capsys.disabled():
        print("\n" + "\n".join(line for line in p.stdout.splitlines() if line.startswith(("[fleet]", "  ", "hv", "central", "ok", "FAIL", "lab:"))))
    Path(os.environ.get("VIRTDECK_FLEET_LOG", "/dev/null")).write_text(p.stdout + p.stderr)
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-3000:]
    assert p.stray == [], f"the sandboxed lab left processes behind: {p.stray}"


# ---------------------------------------------------------------------------------------------
# Inside the sandbox


def op(*args: str, input: str | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """``virtdeck ARGS`` as the fleet's operator (HOME = the fleet's)."""
    from virtdeck.backends.lab import fleet
    return subprocess.run([VIRTDECK, *args], capture_output=True, text=True, input=input,
                          timeout=timeout, env=fleet.operator_env())


def op_json(*args: str, rc: int = 0) -> dict:
    p = op(*args, "--json")
    assert p.returncode == rc, f"virtdeck {' '.join(args)}: rc {p.returncode}\n{p.stdout}\n{p.stderr}"
    return json.loads(p.stdout)


def facts(host_result: dict) -> dict:
    return {line["fact"]: line for line in host_result["lines"]}


@pytest.fixture(scope="module")
def session():
    """A Session on the fleet inventory with HOME = the fleet's (ssh_config read from there)."""
    from virtdeck.backends.lab import fleet
    from virtdeck.backends.session import Session
    from virtdeck.config.inventory import load
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(fleet.home())
    s = Session(load(fleet.inventory_path()))
    yield s
    s.close()
    os.environ["HOME"] = old or "/root"


@inner
def test_inner_lab_status_says_what_each_host_is():
    p = subprocess.run([VIRTDECK, "lab", "status"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = {ln.split(":", 1)[0]: ln for ln in p.stdout.splitlines()}
    assert "bastion (jump host" in lines["ok   central operator ssh"]
    assert "reached only through the bastion, 10.77.0.12:2222, alias hv2.fleet; vdop@hv2 groups vdop libvirt openvswitch" \
        in lines["ok   hv2 operator ssh"]
    assert "fresh hypervisor" in lines["ok   hv3 operator ssh"]
    assert lines["ok   hv2 direct from the machine"].endswith("unreachable without the bastion")
    assert "pool virtdeck missing (fresh" in lines["ok   hv3 libvirtd"]
    print("\n".join(f"[fleet] {ln}" for ln in p.stdout.splitlines() if "operator ssh" in ln or "direct" in ln))


@inner
def test_inner_host_check_healthy_as_the_operator():
    res = op_json("host", "check")
    assert res["ok"] is True, res
    assert [h["host"] for h in res["hosts"]] == ["hv1", "hv2"]  # hv3 is not in the inventory yet
    for h in res["hosts"]:
        f = facts(h)
        assert [line["fact"] for line in h["lines"] if line["status"] != "ok"] == [], h
        assert f["ssh"]["detail"].startswith("vdop@"), f["ssh"]
        assert f["pool virtdeck"]["detail"].startswith("/var/lib/libvirt/images/virtdeck, active")
        assert f["tools"]["detail"].endswith("/run/lock writable (placement lock)")
    assert facts(res["hosts"][0])["ssh"]["detail"].startswith("vdop@192.168.100.11:2222")


@inner
def test_inner_fresh_host_is_onboarded_with_create_pool():
    from virtdeck.backends.lab import fleet
    from virtdeck.config.inventory import load
    before = fleet.inventory_path().read_text()
    p = op("host", "add", "hv3", "hv3.fleet", "--domain-type", "qemu")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "fail  pool virtdeck    no storage pool 'virtdeck'" in p.stdout
    assert "fix: virtdeck host check hv3 --pool virtdeck --create-pool /var/lib/libvirt/images/virtdeck" in p.stdout
    assert "hv3 failed the host check (pool virtdeck); the inventory is unchanged" in p.stderr
    assert fleet.inventory_path().read_text() == before

    res = op_json("host", "add", "hv3", "hv3.fleet", "--domain-type", "qemu",
                  "--create-pool", "/var/lib/libvirt/images/virtdeck")
    assert res["check"]["ok"] is True and res["forced"] is False
    hv3 = load(fleet.inventory_path()).host("hv3")
    assert (hv3.address, hv3.user, hv3.port, hv3.domain_type) == ("hv3.fleet", None, None, "qemu")
    again = op_json("host", "check", "hv3")
    assert again["ok"] is True and facts(again["hosts"][0])["pool virtdeck"]["status"] == "ok"
    # what `host check` prints on each lab host, for the record
    text = op("host", "check")
    assert text.returncode == 0, text.stdout + text.stderr
    print("\n" + text.stdout)


@inner
def test_inner_placement_lock_and_volume_sum_need_no_root(session):
    """As vdop on hv2 (through the bastion): the placement lock is a directory that root can
    lock too; a volume libvirt made root-only is summed by reading it back through libvirt."""
    from virtdeck.backends import hostlock, storage
    from virtdeck.backends.lab.hosts import run_in
    lockdir = "/run/lock/virtdeck-placement-hv2"
    with hostlock.acquire(session, "hv2", wait=10):
        assert run_in("hv2", ["flock", "-n", lockdir, "true"], check=False).returncode == 1  # held
        owner = run_in("hv2", ["stat", "-c", "%U %a", lockdir]).stdout.split()
    assert run_in("hv2", ["flock", "-n", lockdir, "true"], check=False).returncode == 0  # released
    assert owner == ["vdop", "755"]

    data = os.urandom(300_000)
    name = f"fleet-sum-{uuid.uuid4().hex[:6]}.raw"
    conn = session.libvirt("hv2")
    info = storage.upload_volume(conn, "hv2", "virtdeck", name, data)
    try:
        denied = session.run("hv2", ["sha256sum", "--", info.path], timeout=20)
        assert denied.rc != 0 and "Permission denied" in denied.stderr  # the operator may not read it
        assert storage.sha256_on_host(session, "hv2", info.path) == hashlib.sha256(data).hexdigest()
    finally:
        storage.delete_volume(conn, "hv2", "virtdeck", name)


@inner
def test_inner_template_add_url_as_the_operator(session):
    """`template add --url` as vdop: the pool directory is root's, so each host downloads into the
    operator's cache and libvirtd takes the verified file in (vol-create-as + vol-upload); the
    volume ends in the pool, the cache ends empty, and `template delete` removes it again."""
    from virtdeck.backends import storage
    from virtdeck.backends.lab import http as lab_http
    qcow2, sha256 = os.environ["VIRTDECK_FLEET_GPT"].split()  # the outer test's debian12-gpt
    lab_http.ensure()
    name = f"fleeturl{uuid.uuid4().hex[:5]}"
    url = lab_http.publish({f"{name}.qcow2": Path(qcow2)})[f"{name}.qcow2"]
    hosts = [h.name for h in session.inventory.hypervisors if h.enabled]
    denied = session.run(hosts[0], ["test", "-w", "/var/lib/libvirt/images/virtdeck"], timeout=15)
    assert denied.rc != 0  # what the operator's world is: the pool directory is not theirs
    p = op("template", "add", name, "--url", url, "--sha256", sha256, timeout=900)
    try:
        assert p.returncode == 0, p.stdout + p.stderr
        for h in hosts:
            vol = storage.find_volume(session.libvirt(h), h, "virtdeck", f"{name}.qcow2")
            assert vol is not None, f"{h}: no volume {name}.qcow2"
            assert storage.sha256_on_host(session, h, storage.volume_info(vol).path) == sha256
            left = session.run(h, ["sh", "-c", "ls -A \"${XDG_CACHE_HOME:-$HOME/.cache}/virtdeck/downloads\""],
                               timeout=15).stdout.split()
            assert left == [], f"{h}: the download cache kept {left}"
        print(f"\n[fleet] template add --url as vdop on {len(hosts)} hosts: ok ({p.stderr.strip()[-120:]})")
    finally:
        op("template", "delete", name)
    assert all(storage.find_volume(session.libvirt(h), h, "virtdeck", f"{name}.qcow2") is None for h in hosts)


@pytest.fixture(scope="module")
def net():
    """An overlay network of the test tenant, made as the operator (NB over TCP)."""
    p = op("network", "create", "net1", "--tenant", TENANT, "--cidr", "10.49.0.0/24")
    assert p.returncode == 0, p.stdout + p.stderr
    yield "net1"
    op("network", "delete", "net1", "--tenant", TENANT, "--cascade")


def create_args(name: str, *extra: str) -> list[str]:
    from virtdeck.backends.lab import fleet
    return ["vm", "create", name, "--tenant", TENANT, "--template", "debian12", "--memory", "256",
            "--disk", "3", "--network", "net1", "--password-hash", "$6$salt$" + "x" * 86,
            "--ssh-key", str(fleet.home() / ".ssh" / "id_ed25519.pub"), *extra]


@inner
def test_inner_disable_makes_placement_refuse_with_the_reason(net):
    p = op("host", "disable", "hv1", "--reason", "fleet firmware")
    assert p.returncode == 0 and p.stdout == "hv1 disabled (fleet firmware): placement skips it\n", p.stderr
    res = op_json(*create_args("fleet-dry", "--host", "hv1", "--dry-run"), rc=2)
    rows = {r["host"]: r for r in res["placement"]}
    assert "enabled: host is disabled in the inventory (fleet firmware)" in rows["hv1"]["reasons"]
    assert op("host", "enable", "hv1").returncode == 0
    assert op_json(*create_args("fleet-dry", "--host", "hv1", "--dry-run"))["host"] == "hv1"


@inner
def test_inner_drain_moves_a_stopped_vm(net, session):
    """Created stopped on hv1 as the operator (overlay + seed through libvirt, the lock), moved
    by `host drain hv1 --move-to hv2` (the disk copied through libvirt streams), deleted."""
    name = f"fleet-dr-{uuid.uuid4().hex[:4]}"
    res = op_json(*create_args(name, "--host", "hv1", "--no-start"))
    assert res["host"] == "hv1" and res["running"] is False
    try:
        # its definition file is root's (0600): the console's one-command read gets nothing for
        # it, and the listing falls back to libvirt's XMLDesc; the OVS mappings come through
        from virtdeck.backends import host_facts, hypervisor as hv
        maps, text = host_facts.mappings_and_definitions(session, "hv1", hv.CONFIG_DIR)
        assert maps == (("physnet1", "br-phys"),) and name not in text
        listing = hv.list_domains(session.libvirt("hv1"), "hv1", config_min=0,
                                  config_xml=lambda: hv.parse_config_text(text))
        vm = next(v for v in listing.vms if v.name == name)
        assert (vm.state, vm.vcpus, vm.memory_mib) == ("shutoff", 1, 256)
        same = op("host", "drain", "hv1", "--move-to", "hv1")
        assert (same.returncode, same.stderr) == (2, "virtdeck: --move-to: hv1 is the host being drained; "
                                                     "name another hypervisor\n")
        out = op_json("host", "drain", "hv1", "--move-to", "hv2")
        assert out["moved"] == [name] and out["failed"] == {}, out
        assert name in [d.name() for d in session.libvirt("hv2").listAllDomains(0)]
        assert name not in [d.name() for d in session.libvirt("hv1").listAllDomains(0)]
    finally:
        p = op("vm", "delete", name, "--yes")
    assert p.returncode == 0, p.stdout + p.stderr
    for h in ("hv1", "hv2"):
        assert name not in [d.name() for d in session.libvirt(h).listAllDomains(0)]


@inner
async def test_inner_console_as_the_operator(net, session):
    """The console as vdop (HOME = the fleet's: ssh_config aliases, hv2 through the bastion, the
    operator's OVN certificate): its hypervisors come up, a domain root defines on hv2 from
    outside appears within 1 s, the operator's network is listed, and with a raft member list the
    status line names the members it talks to."""
    import asyncio
    import time

    from live_helpers import tiny_domain, until
    from virtdeck.backends.lab.hosts import run_in
    from virtdeck.console.app import VirtdeckApp
    from virtdeck.console.live import LiveModel
    from virtdeck.screens import views

    inv = session.inventory
    live = LiveModel(inv).start()
    app = VirtdeckApp(live, inventory=inv)
    name = f"fleet-ui-{uuid.uuid4().hex[:4]}"

    def shown(panel: str) -> list[str]:
        return [r.cells[0] for r in app.screen.table(panel).rows]

    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await asyncio.to_thread(live.wait_ready, 30)
            want = {h.name for h in inv.hypervisors if h.enabled}  # hv1, hv2 (+ hv3 once onboarded)
            took = await until(pilot, lambda: {h.name for h in app.cloud.hosts if h.up} == want, 20,
                               f"{', '.join(sorted(want))} up")
            await pilot.press("2")
            xml = tiny_domain(name).replace("'", "'\\''")
            t0 = time.monotonic()
            run_in("hv2", ["sh", "-c", f"printf '%s' '{xml}' > /tmp/{name}.xml && "
                                       f"virsh -q -c qemu:///system define /tmp/{name}.xml"])
            await until(pilot, lambda: name in shown("vms"), 1.0, f"{name} defined on hv2")
            seen = time.monotonic() - t0
            await pilot.press("3")
            await until(pilot, lambda: any(net in row for row in shown("networks")), 5, f"network {net}")
            line = views.status_line(app.cloud, None)
            if "," in (inv.ovn.connection or ""):  # a raft member list: the line says which member
                await until(pilot, lambda: "via" in views.status_line(app.cloud, None), 5, "the NB member")
                line = views.status_line(app.cloud, None)
            print(f"\n[fleet] console as vdop: hosts up in {took:.1f} s after ready, define on hv2 → "
                  f"screen {seen * 1000:.0f} ms; status: {line}")
    finally:
        run_in("hv2", ["sh", "-c", f"virsh -q -c qemu:///system undefine {name}; rm -f /tmp/{name}.xml"],
               check=False)
        live.stop()


@inner
def test_inner_ovn_controller_stopped_is_a_fail_line():
    from virtdeck.backends.lab.hosts import run_in
    run_in("hv1", ["ovn-appctl", "-t", "ovn-controller", "exit"])
    res = op_json("host", "check", "hv1", rc=1)
    f = facts(res["hosts"][0])
    assert (f["ovn-controller"]["status"], f["ovn-controller"]["detail"]) == ("fail", "ovn-controller is not running")
    assert f["ovn-controller"]["fix"] == "on hv1: sudo systemctl start ovn-controller"
    assert f["ssh"]["status"] == f["libvirt"]["status"] == "ok"
    print("\n[fleet] host check hv1 with ovn-controller stopped:\n" + op("host", "check", "hv1").stdout)
