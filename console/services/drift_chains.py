"""The dependency chains of the drift check: for a VM, a network, a router or a host, each link
(VM → NIC (MAC) → LSP → logical switch → router port → router → gateway chassis → physnet)
checked against libvirt, the OVN NB and the OVN SB. Pure functions over the
:class:`.drift.Facts` that :func:`.drift.gather` read (no I/O); each returns
``[{"link", "state": "ok" | "drift" | "info", "text"}]``, empty when the object is unknown.
Split from drift.py, which judges the findings and fixes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .drift import Facts


def chain(facts: Facts, vm: str) -> list[dict]:
    """The dependency chain of VM ``vm``, each link checked against both systems of record:
    VM (host, state) → NIC (MAC) → LSP → logical switch (network, kind) → SB binding chassis →
    router port → router → gateway chassis (SB active) → provider network / physnet mapping on the
    VM's host. Returns ``[{"link", "state": "ok"|"drift"|"info", "text"}]`` in that order (empty
    when no answered hypervisor has the VM)."""
    doms = [d for hv in facts.hosts.values() for d in hv.domains if d.name == vm]
    if not doms:
        return []
    out: list[dict] = []

    def add(link, state, text):
        out.append({"link": link, "state": state, "text": text})

    nb, sb = facts.nb, facts.sb
    lsp_by_name = {p.name: p for p in nb.ports}
    net_by_switch = {n.name: n for n in nb.networks}
    for d in doms:
        add("vm", "ok", f"VM {d.name} on {d.host} ({'running' if d.running else 'not running'})")
        chassis = sb.chassis_of_host(d.host) if sb else None
        for nic in d.nics:
            p = lsp_by_name.get(nic.interfaceid or "")
            if p is None:
                add("nic", "drift", f"  NIC {nic.mac} → LSP {nic.interfaceid}: missing in the NB")
                continue
            add("nic", "ok", f"  NIC {nic.mac} → LSP {p.name} ({p.label or '-'})")
            net = net_by_switch.get(p.switch)
            kind = (f"provider {net.physnet}" + (f" VLAN {net.vlan}" if net.vlan is not None else "")
                    if net and net.kind == "provider" else "overlay")
            add("switch", "ok", f"    LSP → switch {p.switch} (network {net.label if net else '?'}, {kind})")
            if sb is not None:
                b = sb.binding(p.name)
                where = sb.host_of_chassis(b.chassis) if b and b.chassis else None
                if b is None or not b.chassis:
                    add("binding", "ok" if not d.running else "drift",
                        f"    SB: port not bound{'' if not d.running else ' although the VM runs'}")
                else:
                    ok = where == d.host
                    add("binding", "ok" if ok else "drift",
                        f"    SB: bound on chassis {b.chassis} ({where or 'no inventory host'})"
                        f"{'' if ok else ' - not the VM host ' + d.host}; up={b.up}")
            if net and net.kind == "provider" and net.physnet:
                maps = chassis.bridge_mappings if chassis else {}
                mapped = net.physnet in maps
                add("physnet", "ok" if mapped else "drift",
                    f"    physnet {net.physnet} on {d.host}: "
                    + (f"bridge {maps[net.physnet]}" if mapped else "not mapped"))
            for r in nb.routers:
                for rp in r.ports:
                    if rp.peer_switch != p.switch:
                        continue
                    add("router", "ok", f"    switch → router port {rp.name} ({', '.join(rp.networks)}) "
                                        f"on router {r.label or r.name}")
                    gws = [g for g in r.ports if g.gateway_chassis]
                    if not gws:
                        add("gateway", "info", f"      router {r.label or r.name}: no gateway port")
                    for g in gws:
                        active = next((x.active for x in (sb.gateways if sb else ())
                                       if x.port == g.name), None)
                        add("gateway", "ok" if active or sb is None else "drift",
                            f"      gateway {g.name} on {g.peer_switch or '?'}: chassis "
                            f"{', '.join(g.gateway_chassis)}; active {active or ('?' if sb is None else 'none')}")
    return out


def _net_named(nb, name: str):
    return next((n for n in nb.networks if name in (n.label, n.name)), None)


def _router_named(nb, name: str):
    return next((r for r in nb.routers if name in (r.label, r.name)), None)


def network_chain(facts: Facts, name: str) -> list[dict]:
    """The chain of network ``name`` (label or switch name): switch (kind, physnet) → DHCP
    options vs subnet → each VM port (its VM's host vs its SB chassis) → router ports → routers'
    gateway chassis → physnet mapped on every host with a VM on it. Same shape as :func:`chain`."""
    nb, sb = facts.nb, facts.sb
    n = _net_named(nb, name)
    if n is None:
        return []
    out: list[dict] = []

    def add(link, state, text):
        out.append({"link": link, "state": state, "text": text})

    kind = f"provider {n.physnet}" + (f" VLAN {n.vlan}" if n.vlan is not None else "") \
        if n.kind == "provider" else "overlay"
    add("switch", "ok", f"network {n.label or n.name}: switch {n.name} ({kind}, subnet {n.subnet or '-'})")
    sub = n.other_config.get("subnet")
    if n.dhcp is not None:
        ok = not sub or n.dhcp.cidr == sub
        add("dhcp", "ok" if ok else "drift", f"  DHCP options {n.dhcp.cidr}" + ("" if ok else f" != subnet {sub}"))
    nic_host = {nic.interfaceid: d for hv in facts.hosts.values() for d in hv.domains for nic in d.nics}
    hosts_used = set()
    for p in (p for p in nb.ports if p.switch == n.name and not p.type):
        d = nic_host.get(p.name)
        b = sb.binding(p.name) if sb else None
        where = sb.host_of_chassis(b.chassis) if b and b.chassis else None
        if d is None:
            add("port", "drift" if p.vm else "info",
                f"  port {p.name} ({p.vm or p.label or '-'}): no domain uses it")
            continue
        hosts_used.add(d.host)
        ok = b is None or not b.chassis or where == d.host
        add("port", "ok" if ok else "drift",
            f"  port {p.name} → VM {d.name} on {d.host}; SB: "
            + ("not bound" if b is None or not b.chassis else f"bound on {b.chassis} ({where or '?'})"))
    for r in nb.routers:
        for rp in r.ports:
            if rp.peer_switch == n.name:
                add("router", "ok", f"  router port {rp.name} ({', '.join(rp.networks)}) on router {r.label or r.name}")
                for g in (g for g in r.ports if g.gateway_chassis):
                    active = next((x.active for x in (sb.gateways if sb else ()) if x.port == g.name), None)
                    add("gateway", "ok" if active or sb is None else "drift",
                        f"    gateway {g.name}: chassis {', '.join(g.gateway_chassis)}; active {active or '-'}")
    if n.kind == "provider" and n.physnet and sb is not None:
        for h in sorted(hosts_used):
            c = sb.chassis_of_host(h)
            mapped = c is not None and n.physnet in c.bridge_mappings
            add("physnet", "ok" if mapped else "drift", f"  physnet {n.physnet} on {h}: "
                + (f"bridge {c.bridge_mappings[n.physnet]}" if mapped else "not mapped"))
    return out


def router_chain(facts: Facts, name: str) -> list[dict]:
    """The chain of router ``name``: each router port → its switch; the gateway port → its
    provider network and physnet → gateway chassis (inventory host, SB active, physnet mapped
    there)."""
    nb, sb = facts.nb, facts.sb
    r = _router_named(nb, name)
    if r is None:
        return []
    out: list[dict] = []

    def add(link, state, text):
        out.append({"link": link, "state": state, "text": text})

    add("router", "ok", f"router {r.label or r.name} ({r.name})")
    by_switch = {x.name: x for x in nb.networks}
    for p in r.ports:
        net = by_switch.get(p.peer_switch or "")
        add("port", "ok" if net else "drift",
            f"  port {p.name} ({', '.join(p.networks)}) → " + (f"network {net.label or net.name}" if net
                                                               else "no switch links to it"))
        if p.gateway_chassis:
            active = next((x.active for x in (sb.gateways if sb else ()) if x.port == p.name), None)
            for ch in p.gateway_chassis:
                c = sb.chassis_named(ch) if sb else None
                if sb is None:
                    add("gateway", "info", f"    gateway chassis {ch} (southbound not read)")
                    continue
                if c is None:
                    add("gateway", "drift", f"    gateway chassis {ch}: not in the southbound")
                    continue
                physnet = net.physnet if net else None
                mapped = physnet is None or physnet in c.bridge_mappings
                add("gateway", "ok" if mapped and c.host else "drift",
                    f"    gateway chassis {ch} ({c.host or 'no inventory host'})"
                    + (" active" if active == ch else "")
                    + ("" if mapped else f"; physnet {physnet} not mapped there"))
            if sb is not None and not active:
                add("gateway", "drift", "    no chassis has the gateway port bound")
    for x in r.nats:
        add("nat", "info", f"  {x.type} {x.external_ip} ↔ {x.logical_ip}")
    return out


def host_chain(facts: Facts, name: str) -> list[dict]:
    """The chain of hypervisor ``name``: answered → its SB chassis (encap, bridge mappings) →
    its domains' ports bound on that chassis or elsewhere."""
    out: list[dict] = []

    def add(link, state, text):
        out.append({"link": link, "state": state, "text": text})

    if name in facts.unreachable:
        add("host", "drift", f"host {name}: did not answer ({facts.unreachable[name]})")
        return out
    hv = facts.hosts.get(name)
    if hv is None:
        return out
    add("host", "ok", f"host {name}: {len(hv.domains)} domain(s), {sum(d.running for d in hv.domains)} running")
    sb = facts.sb
    c = sb.chassis_of_host(name) if sb else None
    if sb is not None:
        add("chassis", "ok" if c else "drift",
            f"  chassis {c.name}: encap {', '.join(f'{t} {ip}' for t, ip in c.encaps) or 'none'}; "
            f"mappings {', '.join(f'{k}:{v}' for k, v in c.bridge_mappings.items()) or 'none'}"
            if c else "  no SB chassis is this host (is ovn-controller running?)")
    lsps = {p.name for p in facts.nb.ports}
    for d in hv.domains:
        for nic in d.nics:
            if not nic.interfaceid:
                continue
            b = sb.binding(nic.interfaceid) if sb else None
            bound = b.chassis if b else None
            ok = nic.interfaceid in lsps and (bound is None or (c is not None and bound == c.name))
            add("port", "ok" if ok else "drift",
                f"  VM {d.name} NIC {nic.mac} → LSP {nic.interfaceid}"
                + ("" if nic.interfaceid in lsps else " (missing)")
                + (f"; bound on {bound}" if bound else "; not bound"))
    return out
