"""Benchmark: a network with 100 VM ports in ONE ovsdbapp transaction vs 100 `ovn-nbctl` calls.

Both sides write the same rows: a Logical_Switch (virtdeck external_ids, subnet), its
DHCP_Options, and 100 LSPs each with "MAC IP" addresses, port security and the DHCP options
reference. The ovn-nbctl side makes the switch + DHCP row in 2 calls, then one call per port
(each call = a process, a connection, a transaction: what a shell script would do).

    .venv/bin/python tests/bench/bench_networks.py [--ports 100] [--rounds 3] [--remote tcp:H:P|lab]

Without --remote it starts a throwaway ovsdb-server with the OVN NB schema (unix socket) and
stops it at the end. Prints each round and the median ratio (no timed assertions). The bench rows are removed
after each side, so both start from the same database.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


from virtdeck.backends.ovn import names as ovn_names  # noqa: E402
from virtdeck.backends.session import open_nb  # noqa: E402

SCHEMA = "/usr/share/ovn/ovn-nb.ovsschema"


def start_server(tmp: Path) -> tuple[subprocess.Popen, str]:
    db, sock = tmp / "nb.db", tmp / "nb.sock"
    subprocess.run(["ovsdb-tool", "create", str(db), SCHEMA], check=True)
    proc = subprocess.Popen(["ovsdb-server", str(db), f"--remote=punix:{sock}", f"--unixctl={tmp}/ctl",
                             f"--log-file={tmp}/log"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(500):
        if sock.exists():
            break
        time.sleep(0.01)
    return proc, f"unix:{sock}"


def nbctl_argv(remote: str) -> list[str]:
    """ovn-nbctl argv prefix for ``remote``; "lab" = the lab's NB whatever its flavour (tcp, or the
    ssl member list with the operator's certificate: backends/lab/central.ctl_argv)."""
    if remote == "lab":
        from virtdeck.backends.lab import central
        return central.ctl_argv("nb", timeout=30)
    return ["ovn-nbctl", f"--db={remote}"]


def open_remote(remote: str):
    """The ovsdbapp NB API on ``remote`` ("lab": the lab inventory's connection, SSL included)."""
    if remote != "lab":
        return open_nb(remote)
    from virtdeck.backends.lab import pki, topology as topo
    from virtdeck.backends.lab.central import flavour
    from virtdeck.backends.ovn.remote import SslFiles
    flav = flavour()
    if flav != topo.OVN_CLUSTER_SSL:
        return open_nb(topo.nb_remote(flav))
    op = pki.pair("operator")
    return open_nb(topo.nb_remote(flav), ssl=SslFiles(str(op.key), str(op.cert), str(pki.ca_bundle())))


def ports(n: int, third: int) -> list[tuple[str, str, str]]:
    out = []
    for i in range(n):
        mac = f"0a:00:00:{third:02x}:{i // 256:02x}:{i % 256:02x}"
        ip = f"10.{third}.{i // 250}.{i % 250 + 2}"
        out.append((f"00000000-0000-4000-8000-{third:04x}{i:08x}", mac, ip))
    return out


def one_transaction(api, tag: int, n: int) -> float:
    sw = f"vd.bench.net{tag}"
    t0 = time.perf_counter()
    with api.transaction(check_error=True) as txn:
        txn.add(api.ls_add(sw, may_exist=True, other_config={"subnet": f"10.{tag}.0.0/16"},
                           external_ids={ovn_names.EXT_TENANT: "bench", ovn_names.EXT_NAME: f"net{tag}", ovn_names.EXT_ROLE: "network"}))
        d = txn.add(api.dhcp_options_add(f"10.{tag}.0.0/16", **{ovn_names.EXT_TENANT: "bench", ovn_names.EXT_ROLE: "dhcp"}))
        txn.add(api.dhcp_options_set_options(d, router=f"10.{tag}.0.1", server_id=f"10.{tag}.0.1",
                                             server_mac="0a:00:00:00:00:01", lease_time="3600", mtu="1400"))
        for name, mac, ip in ports(n, tag):
            p = txn.add(api.lsp_add(sw, name, addresses=[f"{mac} {ip}"], port_security=[f"{mac} {ip}"],
                                    external_ids={ovn_names.EXT_TENANT: "bench"}))
            txn.add(api.db_set("Logical_Switch_Port", p, ("dhcpv4_options", d)))
    return time.perf_counter() - t0


def nbctl_calls(remote: str, tag: int, n: int) -> float:
    sw = f"vd.bench.net{tag}"

    def nbctl(*args: str) -> str:
        return subprocess.run([*nbctl_argv(remote), *args], check=True, capture_output=True,
                              text=True).stdout.strip()

    t0 = time.perf_counter()
    nbctl("ls-add", sw, "--", "set", "Logical_Switch", sw, f"other_config:subnet=10.{tag}.0.0/16",
          "external_ids:virtdeck\\:tenant=bench", "external_ids:virtdeck\\:role=network")
    d = nbctl("create", "DHCP_Options", f"cidr=10.{tag}.0.0/16",
              f'options={{router="10.{tag}.0.1", server_id="10.{tag}.0.1", server_mac="0a:00:00:00:00:01", '
              'lease_time="3600", mtu="1400"}', 'external_ids={"virtdeck:tenant"=bench}')
    for name, mac, ip in ports(n, tag):
        nbctl("lsp-add", sw, name, "--", "lsp-set-addresses", name, f"{mac} {ip}",
              "--", "lsp-set-port-security", name, f"{mac} {ip}", "--", "lsp-set-dhcpv4-options", name, d,
              "--", "set", "Logical_Switch_Port", name, "external_ids:virtdeck\\:tenant=bench")
    return time.perf_counter() - t0


def count_ports(remote: str) -> int:
    out = subprocess.run([*nbctl_argv(remote), "--bare", "--columns=name", "find", "Logical_Switch_Port",
                          "external_ids:virtdeck\\:tenant=bench"], check=True, capture_output=True, text=True).stdout
    return len([l for l in out.splitlines() if l.strip()])


def cleanup(remote: str) -> None:
    out = subprocess.run([*nbctl_argv(remote), "--bare", "--columns=name", "find", "Logical_Switch",
                          "external_ids:virtdeck\\:tenant=bench"], capture_output=True, text=True).stdout
    for sw in out.split():
        subprocess.run([*nbctl_argv(remote), "ls-del", sw], check=True)
    out = subprocess.run([*nbctl_argv(remote), "--bare", "--columns=_uuid", "find", "DHCP_Options",
                          "external_ids:virtdeck\\:tenant=bench"], capture_output=True, text=True).stdout
    for u in out.split():
        subprocess.run([*nbctl_argv(remote), "dhcp-options-del", u], check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ports", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--remote", help="an existing NB (e.g. tcp:H:6641, or lab: the lab's NB, tcp or ssl "
                                     "by its flavour); default: a throwaway one")
    args = ap.parse_args()

    proc = None
    tmp = tempfile.TemporaryDirectory(prefix="vd-bench-")
    remote = args.remote
    if not remote:
        proc, remote = start_server(Path(tmp.name))
    try:
        cleanup(remote)  # leftovers of an interrupted run
        t0 = time.perf_counter()
        api = open_remote(remote)
        connect = time.perf_counter() - t0
        print(f"NB {remote}; ovsdbapp connect + schema + initial sync: {connect * 1000:.1f} ms (not counted below)")
        print(f"{'round':>5} {'1 txn (s)':>10} {'nbctl (s)':>10} {'ratio':>7}")
        ratios = []
        for r in range(args.rounds):
            # Each side starts from the same (empty of bench rows) database: ovn-nbctl reads the
            # tables it needs on every call, so a bigger database would slow only that side.
            a = one_transaction(api, 10 + 2 * r, args.ports)
            assert count_ports(remote) == args.ports
            cleanup(remote)
            b = nbctl_calls(remote, 11 + 2 * r, args.ports)
            assert count_ports(remote) == args.ports
            cleanup(remote)
            ratios.append(b / a)
            print(f"{r + 1:>5} {a:>10.3f} {b:>10.3f} {b / a:>6.1f}x")
        print(f"network + {args.ports} ports: one ovsdbapp transaction vs {args.ports} ovn-nbctl calls: "
              f"median ratio {statistics.median(ratios):.1f}x (ovn-nbctl slower)")
        cleanup(remote)
        api.ovsdb_connection.stop(timeout=2)
    finally:
        cleanup(remote)
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=5)
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
