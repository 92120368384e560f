"""NICs whose OVN port went away (``network delete --cascade``) and the instance metadata."""

from __future__ import annotations

import concurrent.futures
import xml.etree.ElementTree as ET
from dataclasses import replace
from typing import Iterable

import libvirt

from ..errors import VirtdeckError
from .vm_lookup import _hypervisor_names, _lv_msg

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


def _set_instance_meta(dom, meta, flags: int) -> None:
    """Replace the domain's ``<virtdeck:instance>`` metadata with ``meta`` (domain_xml.InstanceMeta)
    under ``flags`` (VIR_DOMAIN_AFFECT_*). Raises libvirtError."""
    from ...backends import domain_xml as dx

    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, dx.metadata_xml(meta), dx.PREFIX, dx.NS, flags)


def detach_ports(session, lsps: Iterable[str], switch: str | None = None) -> dict:
    """Detach, from every domain on the enabled hypervisors, the NICs bound (openvswitch
    virtualport interfaceid) to the LSPs ``lsps`` — the ports a ``network delete --cascade``
    removed, so no domain is left with a NIC pointing at a deleted port.

    Running domains: ``detachDeviceFlags(LIVE | CONFIG)`` (libvirt asks the guest to release
    the PCI device and waits ~5 s; a guest that does not answer keeps the NIC until it does or
    until its next boot, the config is changed at once). Others: CONFIG only. ``switch``: the
    deleted logical switch, also dropped from the ``<virtdeck:instance>`` networks metadata.

    Returns ``{"detached": [{"vm", "host", "mac", "lsp", "live"}], "problems": [str]}``; never
    raises for one host or domain (an unreachable host is a problem line: its domains keep the
    NIC, which then has no port — it carries no traffic; run this again once it is back).
    """
    from ...backends import domain_xml as dx

    want = set(lsps)
    out: dict = {"detached": [], "problems": []}
    if not want:
        return out
    CFG, LIVE = libvirt.VIR_DOMAIN_AFFECT_CONFIG, libvirt.VIR_DOMAIN_AFFECT_LIVE

    def one(h: str) -> tuple[list[dict], list[str]]:
        done, problems = [], []
        try:
            conn = session.libvirt(h)
            doms = conn.listAllDomains(0)
        except (VirtdeckError, libvirt.libvirtError) as exc:
            why = _lv_msg(exc) if isinstance(exc, libvirt.libvirtError) else str(exc)
            return [], [f"{h}: cannot list domains, their NICs were not checked: {why}"]
        for dom in doms:
            try:
                active = bool(dom.isActive())
                cfg_nics = _nics_bound_to(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), want) \
                    if dom.isPersistent() else {}
                live_nics = _nics_bound_to(dom.XMLDesc(0), want) if active else {}
                for (mac, lsp), dev in {**live_nics, **cfg_nics}.items():
                    flags = (CFG if (mac, lsp) in cfg_nics else 0) | (LIVE if (mac, lsp) in live_nics else 0)
                    dom.detachDeviceFlags(dev, flags)  # libvirt matches it by MAC
                    done.append({"vm": dom.name(), "host": h, "mac": mac, "lsp": lsp, "live": bool(flags & LIVE)})
                if (cfg_nics or live_nics) and switch:
                    raw = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
                    meta = dx.parse_metadata(raw)
                    if meta is not None and switch in meta.networks:
                        meta = replace(meta, networks=tuple(n for n in meta.networks if n != switch))
                        _set_instance_meta(dom, meta, CFG | (LIVE if active else 0))
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    continue
                problems.append(f"{h}: {dom.name()}: detach refused: {_lv_msg(exc)}")
        return done, problems

    hosts = _hypervisor_names(session, None)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        for done, problems in pool.map(one, hosts):
            out["detached"] += done
            out["problems"] += problems
    return out
