"""Namespaces, bridges, veths and addresses of the lab, through pyroute2 (netlink).

Every function here is idempotent: it creates what is missing and leaves what is there.
Functions raise LabError with the netlink message when the kernel refuses.
"""

from __future__ import annotations

import ipaddress
import os
from contextlib import contextmanager

from pyroute2 import IPRoute, NetNS, netns
from pyroute2.netlink.exceptions import NetlinkError

from . import topology as topo
from .state import LabError


def list_netns() -> list[str]:
    """Names in /run/netns (the namespaces `ip netns` knows)."""
    try:
        return sorted(os.listdir("/run/netns"))
    except FileNotFoundError:
        return []


def lab_netns() -> list[str]:
    """The lab's namespaces that exist now (vd-*)."""
    return [n for n in list_netns() if n.startswith("vd-")]


def ensure_netns(name: str) -> None:
    if name not in list_netns():
        try:
            netns.create(name)
        except OSError as exc:
            raise LabError(f"cannot create network namespace {name}: {exc}") from None


def remove_netns(name: str) -> None:
    if name in list_netns():
        try:
            netns.remove(name)
        except OSError as exc:
            raise LabError(f"cannot remove network namespace {name}: {exc}") from None


def netns_pids(name: str) -> list[int]:
    """PIDs of processes whose network namespace is ``name`` (like `ip netns pids`)."""
    path = f"/run/netns/{name}"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            s = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if s.st_ino == st.st_ino and s.st_dev == st.st_dev:
            pids.append(int(entry))
    return pids


@contextmanager
def _ipr(ns: str | None):
    ipr = NetNS(ns) if ns else IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def _index(ipr, ifname: str) -> int | None:
    found = ipr.link_lookup(ifname=ifname)
    return found[0] if found else None


def link_exists(ifname: str, ns: str | None = None) -> bool:
    with _ipr(ns) as ipr:
        return _index(ipr, ifname) is not None


def ensure_bridge(name: str, address: str | None = None, prefixlen: int = 24) -> None:
    """A Linux bridge in the root namespace, up, with ``address`` if given.

    Raises LabError when ``address`` is already on another interface (someone else's network).
    """
    with IPRoute() as ipr:
        if address:
            for a in ipr.get_addr(family=2):
                if a.get("address") == address and a.get("index") != _index(ipr, name):
                    other = ipr.get_links(a["index"])[0].get("ifname")
                    raise LabError(f"address {address} is already on interface {other}; "
                                   f"free it or run `virtdeck lab down` if it is a lab's")
        idx = _index(ipr, name)
        if idx is not None:
            kind = ipr.get_links(idx)[0].get(("IFLA_LINKINFO", "IFLA_INFO_KIND"))
            if kind != "bridge":
                raise LabError(f"interface {name} exists and is not a bridge ({kind}); "
                               f"delete it (`ip link del {name}`) and run `virtdeck lab up` again")
        if idx is None:
            try:
                # No STP delay: hosts should talk the moment they are up.
                ipr.link("add", ifname=name, kind="bridge", br_stp_state=0, br_forward_delay=0)
            except NetlinkError as exc:
                raise LabError(f"cannot create bridge {name}: {exc}") from None
            idx = _index(ipr, name)
        if address and not any(a.get("address") == address for a in ipr.get_addr(index=idx)):
            ipr.addr("add", index=idx, address=address, prefixlen=prefixlen)
        ipr.link("set", index=idx, state="up")


def delete_link(name: str, ns: str | None = None) -> None:
    with _ipr(ns) as ipr:
        idx = _index(ipr, name)
        if idx is not None:
            try:
                ipr.link("del", index=idx)
            except NetlinkError:
                pass


def ensure_veth(outer: str, bridge: str, ns: str, inner: str) -> None:
    """A veth pair: ``outer`` in the root namespace enslaved to ``bridge`` and up, ``inner`` in
    ``ns``. A half pair (outer without inner) is replaced.
    """
    with _ipr(ns) as nsr:
        inner_ok = _index(nsr, inner) is not None
    with IPRoute() as ipr:
        idx = _index(ipr, outer)
        if idx is not None and not inner_ok:
            ipr.link("del", index=idx)
            idx = None
        if idx is None:
            try:
                ipr.link("add", ifname=outer, kind="veth", peer={"ifname": inner, "net_ns_fd": ns})
            except NetlinkError as exc:
                raise LabError(f"cannot create veth {outer}: {exc}") from None
            idx = _index(ipr, outer)
        br = _index(ipr, bridge)
        ipr.link("set", index=idx, master=br, state="up")


def ensure_ns_veth(outer: str, ns_outer: str, inner: str, ns_inner: str) -> None:
    """A veth pair between two namespaces (``outer`` in ``ns_outer``, ``inner`` in ``ns_inner``)."""
    with _ipr(ns_inner) as nsr:
        inner_ok = _index(nsr, inner) is not None
    with _ipr(ns_outer) as ipr:
        idx = _index(ipr, outer)
        if idx is not None and not inner_ok:
            ipr.link("del", index=idx)
            idx = None
        if idx is None:
            ipr.link("add", ifname=outer, kind="veth", peer={"ifname": inner, "net_ns_fd": ns_inner})
            idx = _index(ipr, outer)
        ipr.link("set", index=idx, state="up")


def ensure_addr(ns: str, ifname: str, address: str | None, prefixlen: int = 24) -> None:
    """``ifname`` in ``ns`` is up (with ``address`` if given), and so is ``lo``."""
    with _ipr(ns) as ipr:
        idx = _index(ipr, ifname)
        if idx is None:
            raise LabError(f"interface {ifname} missing in namespace {ns}; run `virtdeck lab down` then `lab up`")
        if address and not any(a.get("address") == address for a in ipr.get_addr(index=idx)):
            ipr.addr("add", index=idx, address=address, prefixlen=prefixlen)
        ipr.link("set", index=idx, state="up")
        lo = _index(ipr, "lo")
        ipr.link("set", index=lo, state="up")


def check_underlay_free() -> None:
    """Refuse when 192.168.100.0/24 is routed through something that is not the lab's bridge."""
    net = ipaddress.ip_network(topo.UNDERLAY_CIDR)
    with IPRoute() as ipr:
        br = _index(ipr, topo.UNDERLAY_BRIDGE)
        for a in ipr.get_addr(family=2):
            addr = a.get("address")
            if addr and ipaddress.ip_address(addr) in net and a.get("index") != br:
                other = ipr.get_links(a["index"])[0].get("ifname")
                raise LabError(f"the lab's underlay {topo.UNDERLAY_CIDR} is already used by {other} "
                               f"({addr}); remove that address first")
