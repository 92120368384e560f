"""NICs whose OVN port went away (``network delete --cascade``) and the instance metadata."""

from __future__ import annotations

import concurrent.futures
import xml.etree.ElementTree as ET
from dataclasses import replace
from typing import Iterable

from ...backends import domain_xml as dx
from ...backends import domains
from ..errors import VirtdeckError
from .vm_lookup import _hypervisor_names

# ---------------------------------------------------------------------------------------------
# NICs whose OVN port went away (network delete --cascade)


def _nics_bound_to(xml: str, lsps: set[str]) -> dict[tuple[str, str], str]:
    """``{(mac, interfaceid): <interface> XML}`` of the domain's interfaces bound to one of ``lsps``."""
    out = {}
    for i in ET.fromstring(xml).findall("devices/interface"):
        params = i.find("virtualport/parameters")
        mac = i.find("mac")
        if params is not None and params.get("interfaceid") in lsps and mac is not None:
            out[(mac.get("address").lower(), params.get("interfaceid"))] = ET.tostring(i, encoding="unicode")
    return out


def detach_ports(session, lsps: Iterable[str], switch: str | None = None) -> dict:
    """Detach, from every domain on the enabled hypervisors, the NICs bound (openvswitch
    virtualport interfaceid) to the LSPs ``lsps`` — the ports a ``network delete --cascade``
    removed, so no domain is left with a NIC pointing at a deleted port.

    Running domains: :func:`domains.detach_device` live and config (libvirt asks the guest to release
    the PCI device and waits ~5 s; a guest that does not answer keeps the NIC until it does or
    until its next boot, the config is changed at once). Others: CONFIG only. ``switch``: the
    deleted logical switch, also dropped from the ``<virtdeck:instance>`` networks metadata.

    Returns ``{"detached": [{"vm", "host", "mac", "lsp", "live"}], "problems": [str]}``; never
    raises for one host or domain (an unreachable host is a problem line: its domains keep the
    NIC, which then has no port — it carries no traffic; run this again once it is back).
    """
    want = set(lsps)
    out: dict = {"detached": [], "problems": []}
    if not want:
        return out

    def one(h: str) -> tuple[list[dict], list[str]]:
        done, problems = [], []
        try:
            doms = domains.list_all(session.libvirt(h), h)
        except VirtdeckError as exc:
            return [], [f"{h}: cannot list domains, their NICs were not checked: {domains.why(exc)}"]
        for dom in doms:
            try:
                active = domains.is_active(dom, h)
                cfg_nics = _nics_bound_to(domains.xml(dom, h, inactive=True), want) \
                    if domains.is_persistent(dom, h) else {}
                live_nics = _nics_bound_to(domains.xml(dom, h), want) if active else {}
                for (mac, lsp), dev in {**live_nics, **cfg_nics}.items():
                    live = (mac, lsp) in live_nics
                    # libvirt matches the NIC by MAC
                    domains.detach_device(dom, h, dev, config=(mac, lsp) in cfg_nics, live=live)
                    done.append({"vm": dom.name(), "host": h, "mac": mac, "lsp": lsp, "live": live})
                if (cfg_nics or live_nics) and switch:
                    meta = dx.parse_metadata(domains.xml(dom, h, inactive=True))
                    if meta is not None and switch in meta.networks:
                        meta = replace(meta, networks=tuple(n for n in meta.networks if n != switch))
                        domains.set_instance_meta(dom, h, meta, live=active)
            except domains.DomainGone:
                continue
            except VirtdeckError as exc:
                problems.append(f"{h}: {dom.name()}: detach refused: {domains.why(exc)}")
        return done, problems

    hosts = _hypervisor_names(session, None)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        for done, problems in pool.map(one, hosts):
            out["detached"] += done
            out["problems"] += problems
    return out
