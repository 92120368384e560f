"""Helpers for the networks end-to-end tests (issue 5): wait for ovn-controller to bind an LSP,
make a VM port, ping from the lab's outside host, capture frames, and delete everything a test
tenant owns through the services."""

from __future__ import annotations

import time

from virtdeck.backends.ovn import rows as ovn_rows
from virtdeck.backends.ovn import ports as ovn_ports
from virtdeck.backends.lab import topology as topo
from virtdeck.console.services import network as netsvc
from virtdeck.console.services import router as rsvc
from virtdeck.console.services import security as sgsvc

OUT = topo.OUTSIDE_ADDRESS                 # 172.16.0.254, untagged on physnet1


def teardown_tenant(session, tenant: str) -> None:
    """Delete ``tenant``'s routers, networks (cascading to their ports) and security groups
    through the services, in that order. Check the result with ``ovn_rows.virtdeck_rows``."""
    nb = session.nb()
    for r in rsvc.list_routers(session, tenant):
        rsvc.delete_router(session, tenant, r.name)
    for n in netsvc.list_networks(session, tenant):
        netsvc.delete_network(session, tenant, n.name, cascade=True)
    for g in sgsvc.list_security_groups(session, tenant):
        sgsvc.delete_security_group(session, tenant, g.name)
    ovn_rows.virtdeck_rows(nb, [tenant])


def wait_up(nb, lsp: str, timeout: float = 20) -> None:
    """Wait until ovn-controller has bound the LSP (NB ``up`` = true); AssertionError after
    ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for row in nb.tables["Logical_Switch_Port"].rows.values():
            if row.name == lsp and row.up and row.up[0]:
                return
        time.sleep(0.2)
    raise AssertionError(f"LSP {lsp} never came up")


def vm_port(session, net, tenant, vm, ip=None):
    """A VM LSP (nic 0) on network ``net`` made by the provisioning backend
    (``ovn_ports.create_vm_port``: UUID name, port security, DHCP); ``ip`` None picks a free one."""
    nb = session.nb()
    return ovn_ports.create_vm_port(nb, net, tenant=tenant, vm=vm, nic=0, ip=ip)


def ping_from_outside(addr: str, count: int = 3) -> bool:
    """Whether the lab's outside host gets an echo reply from ``addr`` (``count`` pings, 2 s
    wait each, 30 s in all)."""
    from virtdeck.backends.lab.hosts import run_in
    r = run_in("outside", ["busybox", "ping", "-c", str(count), "-W", "2", addr], check=False, timeout=30)
    return r.returncode == 0


def sniff(netns: str | None, *expr: str, iface: str = "eth0", host: str | None = None, limit: float = 300):
    """Start tcpdump (numeric, line-buffered) on ``iface`` with filter ``expr`` in the machine's
    network namespace ``netns`` (e.g. vd-ext100), or inside lab ``host`` (e.g. a guest's tap on
    hv1) when ``host`` is given; returns once it is listening. Stop it with :func:`sniffed`.
    ``limit``: s after which tcpdump stops on its own (a forgotten capture). It runs in its own
    process group, so a failed start kills tcpdump too, not just `timeout`."""
    import os
    import signal
    import subprocess

    from probes import popen_on
    argv = ["timeout", str(int(limit)), "tcpdump", "-i", iface, "-n", "-l", *expr]
    proc = popen_on(host, argv if host else ["ip", "netns", "exec", netns, *argv], stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True, start_new_session=True)
    said = []
    for _ in range(5):                  # "verbose output suppressed …", then "listening on eth0 …"
        said.append(proc.stderr.readline())
        if "listening on" in said[-1] or not said[-1]:
            break
    if "listening on" not in said[-1]:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError(f"tcpdump on {host or netns}:{iface} did not start: {''.join(said)[-300:]}")
    return proc


def sniffed(proc, timeout: float = 30) -> str:
    """Stop a :func:`sniff` capture and return what it printed (one line per packet)."""
    import os
    import signal
    import subprocess
    proc.terminate()                    # `timeout` passes SIGTERM on to tcpdump, which flushes
    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)     # the group is still ours: `timeout` not yet reaped
        return proc.communicate(timeout=timeout)[0]
