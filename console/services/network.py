"""Network services: create / delete / list virtdeck networks (OVN logical switches).

Shared by the TUI wizard (screens/wizard_network.py) and the CLI (console/cli_network.py).
Every input is validated BEFORE anything is written; a refusal is a
:class:`~console.errors.ValidationError` whose ``field`` names the input ("cidr", "vlan", …)
and whose message says what is allowed. The write itself is one OVN transaction
(:mod:`backends.ovn.networks`), so nothing is ever half-created. Each verb appends one audit
record ("network.create", "network.delete") with outcome ok / noop / failed.

``session`` everywhere is a :class:`backends.session.Session` (``.nb()``, ``.run()``,
``.inventory``) or, for tests and scripts, an ovsdbapp NB API object itself (then provider
validation needs ``physnets=`` passed explicitly).

The field checkers (``check_*``) live in :mod:`.network_fields` (pure and cheap: the wizard calls
them on every keystroke); the whole-request checks (:func:`validate_network`,
:func:`check_fields`, :func:`check_edit`) are here with the verbs, which run in the verb frame
(:func:`.verb.run`: read-only guard, one audit record).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Mapping, Sequence

from ...backends.ovn import networks as ovn_networks, ports as ovn_ports, routers as ovn_routers
from ...backends.ovn.networks import NetworkInfo, NetworkSpec
from ..errors import AlreadyExists, InUse, ValidationError, VirtdeckError
from . import verb
from .network_fields import (check_cidr, check_dns, check_exclude, check_gateway, check_kind,
                             check_lease, check_mtu, check_name, check_overlay_fields, check_physnet,
                             check_vlan)


def nb_api(session):
    """The ovsdbapp NB API of ``session`` (a Session), or ``session`` itself if it is one."""
    return session.nb() if hasattr(session, "nb") and callable(session.nb) else session


# --------------------------------------------------------------------------- bridge mappings

def physnet_hosts(session) -> dict[str, tuple[str, ...]]:
    """{physnet: (hypervisor names that map it)} read from each enabled hypervisor's OVS
    ``external_ids:ovn-bridge-mappings`` over SSH (backends.host_facts, hosts in parallel).
    Hosts that cannot be reached are left out (they cannot vouch for a physnet)."""
    from concurrent.futures import ThreadPoolExecutor

    from ...backends.host_facts import bridge_mappings

    hosts = [h.name for h in session.inventory.hypervisors if h.enabled]

    def read(name):
        try:
            return name, bridge_mappings(session, name)
        except VirtdeckError:
            return name, ()

    out: dict[str, list[str]] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(hosts)))) as pool:
        for name, pairs in pool.map(read, hosts):
            for physnet, _bridge in pairs:
                out.setdefault(physnet, []).append(name)
    return {k: tuple(sorted(v)) for k, v in sorted(out.items())}


# --------------------------------------------------------------------------- the request

@dataclass
class NetworkRequest:
    """What the operator asked for, as typed (strings are fine everywhere).

    ``gateway`` empty: first host address. ``mtu`` empty: 1400 overlay / 1500 provider.
    ``vlan`` empty: untagged. ``dns``/``exclude``: comma/space separated or sequences.
    """

    tenant: str
    name: str
    kind: str = ovn_networks.OVERLAY
    cidr: str = ""
    gateway: str | None = None
    dhcp: bool = True
    lease_time: int | str = ovn_networks.DEFAULT_LEASE
    dns: str | Sequence[str] = ""
    mtu: int | str | None = None
    physnet: str | None = None
    vlan: int | str | None = None
    exclude: str | Sequence[str] = ""


def validate_network(req: NetworkRequest, existing: Sequence[NetworkInfo],
                     physnets: Mapping[str, Sequence[str]] | None) -> NetworkSpec:
    """Check ``req`` against the rules and against ``existing`` networks (all tenants) and
    ``physnets`` ({physnet: hosts}; None = unknown, skip that check). Returns the spec to create;
    raises ValidationError on the first problem found, field by field in form order."""
    tenant = check_name(req.tenant, "tenant")
    name = check_name(req.name, "name")
    for n in existing:
        if n.tenant == tenant and n.name == name:
            raise AlreadyExists("name", f"tenant {tenant} already has a network called {name}")
    kind = check_kind(req.kind)
    check_overlay_fields(kind, req.physnet, req.vlan)
    physnet = vlan = None
    if kind == ovn_networks.PROVIDER:
        physnet = check_physnet(req.physnet, physnets)
        vlan = check_vlan(req.vlan)
        for n in existing:
            if n.kind == ovn_networks.PROVIDER and n.physnet == physnet and n.vlan == vlan:
                what = f"VLAN {vlan}" if vlan is not None else "untagged traffic"
                raise AlreadyExists("vlan", f"{what} on {physnet} is already used by network {n.tenant}/{n.name}")
    cidr = check_cidr(req.cidr)
    for n in existing:
        if n.tenant == tenant and n.cidr and cidr.overlaps(ipaddress.IPv4Network(n.cidr)):
            raise ValidationError("cidr", f"{cidr} overlaps {n.cidr} of network {n.name} in tenant {tenant}")
    gateway = check_gateway(req.gateway, cidr)
    lease = check_lease(req.lease_time)
    dns = check_dns(req.dns)
    mtu = check_mtu(req.mtu, kind)
    exclude = check_exclude(req.exclude, cidr)
    return NetworkSpec(tenant=tenant, name=name, kind=kind, cidr=str(cidr), gateway=gateway,
                       dhcp=bool(req.dhcp), lease_time=lease, dns=dns, mtu=mtu, physnet=physnet,
                       vlan=vlan, exclude=exclude)


# --------------------------------------------------------------------------- verbs

def list_networks(session, tenant: str | None = None) -> list[NetworkInfo]:
    """Every virtdeck network (of ``tenant`` if given) as found in OVN NB."""
    return ovn_networks.list_networks(nb_api(session), tenant)


def create_network(session, req: NetworkRequest,
                   physnets: Mapping[str, Sequence[str]] | None = None) -> NetworkInfo:
    """Validate ``req``, then create the network in one OVN transaction. Returns its
    :class:`NetworkInfo`. ``physnets`` ({physnet: hosts}) defaults to what the hypervisors'
    OVS bridge mappings say (read over SSH) for provider networks.

    Raises ReadOnlyError, ValidationError (nothing written) or HostError (OVN refused; the
    transaction did not apply). Audit: "network.create" with the network's facts."""
    def body(run: verb.VerbRun) -> NetworkInfo:
        nonlocal physnets
        api = nb_api(session)
        if physnets is None and (req.kind or "").strip() == ovn_networks.PROVIDER and hasattr(session, "inventory"):
            physnets = physnet_hosts(session)
        spec = validate_network(req, ovn_networks.list_networks(api), physnets)
        info = ovn_networks.create_network(api, spec)
        _recheck_after_commit(api, req, spec, info)
        run.note(switch=info.switch, kind=info.kind, cidr=info.cidr, gateway=info.gateway,
                 physnet=info.physnet, vlan=info.vlan, dhcp=info.dhcp, mtu=info.mtu)
        return info
    return verb.run("network.create", f"network {req.tenant}/{req.name}", body)


def _recheck_after_commit(api, req: NetworkRequest, spec: NetworkSpec, info: NetworkInfo) -> None:
    """Close the race between validate and write across operators (OVSDB has no
    compare-and-set through ovsdbapp): once our switch is committed, check again against every
    OTHER network now in NB. ovsdb-server sends a commit's updates to monitors before later
    transactions' replies, so of two conflicting creates at least the later one sees the other;
    the one that sees a conflict deletes its own fresh switch and refuses. Both may refuse in a
    photo finish: safe, the operator retries; never both kept. A same-named switch made by the
    other operator (may_exist kept theirs) is refused if it is not what was asked for."""
    if (info.cidr, info.kind, info.physnet, info.vlan) != (spec.cidr, spec.kind, spec.physnet, spec.vlan):
        raise ValidationError("name", f"another operator just created {spec.tenant}/{spec.name} as "
                                      f"{info.kind} {info.cidr}; pick another name")
    others = [n for n in ovn_networks.list_networks(api) if n.switch != info.switch]
    try:
        validate_network(req, others, None)
    except ValidationError as exc:
        ovn_networks.delete_network(api, spec.tenant, spec.name)
        raise ValidationError(exc.field, f"{exc.reason} (created by another operator while this one "
                                         "was being written; nothing kept)") from None


def delete_network(session, tenant: str, name: str, cascade: bool = False,
                   nics_out: dict | None = None) -> NetworkInfo:
    """Delete network ``name`` of ``tenant`` in one OVN transaction.

    Refused (ValidationError on field "cascade", nothing written) while VM ports are on it or
    routers are attached, unless ``cascade``: then those ports, their DHCP rows and the router
    attachments go with it, and the domains' NICs bound to those ports are detached
    (:func:`console.services.vm_nics.detach_ports`: live + config on running domains, config on
    the others). Returns what was deleted; ``nics_out`` (a dict, optional) receives
    ``{"detached": [{"vm", "host", "mac", "lsp", "live"}], "problems": [str]}`` (a host or domain
    where the detach failed; the OVN delete stands either way).

    Raises ReadOnlyError, NotFound, ValidationError (nothing written) or HostError. Audit:
    "network.delete" with ``cascade`` and, once done, what went with it."""
    def body(run: verb.VerbRun) -> NetworkInfo:
        run.note(cascade=cascade)
        api = nb_api(session)
        info = ovn_networks.find_network(api, name, tenant)
        if not cascade and (info.vm_ports or info.routers):
            parts = []
            if info.vm_ports:
                parts.append(f"has {len(info.vm_ports)} VM port(s)")
            if info.routers:
                parts.append(f"is attached to router(s) {', '.join(info.routers)}")
            gw_of = [r.name for r in ovn_routers.list_routers(api, tenant) if r.gateway_network == name]
            if gw_of:
                parts.append(f"is the gateway network of router(s) {', '.join(gw_of)}")
            raise InUse("cascade", f"network {tenant}/{name} {' and '.join(parts)}; "
                        "confirm the cascade (--cascade) to remove them with it")
        if not cascade:
            gw_of = [r.name for r in ovn_routers.list_routers(api, tenant) if r.gateway_network == name]
            if gw_of:
                raise InUse("cascade", f"network {tenant}/{name} is the gateway network of router(s) "
                            f"{', '.join(gw_of)}; confirm the cascade (--cascade) to remove their gateway and NAT")
        ovn_networks.delete_network(api, tenant, name, cascade=cascade)
        nics: dict = {"detached": [], "problems": []}
        if cascade and info.vm_ports and hasattr(session, "inventory"):
            # The domains' NICs bound to the deleted ports go too (live + config), see vm_nics.detach_ports.
            from . import vm_nics
            nics = vm_nics.detach_ports(session, info.vm_ports, switch=info.switch)
        run.note(vm_ports=list(info.vm_ports), routers=list(info.routers),
                 nics_detached=[f"{d['vm']}@{d['host']}:{d['mac']}" for d in nics["detached"]],
                 nics_problems=nics["problems"])
        if nics_out is not None:
            nics_out.update(nics)
        return info
    return verb.run("network.delete", f"network {tenant}/{name}", body)


def check_fields(req: NetworkRequest, existing: Sequence[NetworkInfo] = (),
                 physnets: Mapping[str, Sequence[str]] | None = None) -> dict[str, str]:
    """Every field's problem at once, for validate-as-you-type: {field: what is allowed}.

    Empty dict = :func:`validate_network` would accept ``req``. Fields that depend on another
    (gateway and exclude on cidr; vlan on physnet) are only judged once that one is valid.
    Same rules and messages as :func:`validate_network`.
    """
    errors: dict[str, str] = {}

    def run(field, fn, *a):
        try:
            return fn(*a)
        except ValidationError as exc:
            errors.setdefault(exc.field if exc.field != field and exc.field in _FIELDS else field, exc.reason)
            return None

    tenant = run("tenant", check_name, req.tenant, "tenant")
    name = run("name", check_name, req.name, "name")
    if tenant and name and any(n.tenant == tenant and n.name == name for n in existing):
        errors["name"] = f"tenant {tenant} already has a network called {name}"
    kind = run("kind", check_kind, req.kind)
    run("vlan", check_overlay_fields, kind, req.physnet, req.vlan)
    if kind == ovn_networks.PROVIDER:
        physnet = run("physnet", check_physnet, req.physnet, physnets)
        vlan = run("vlan", check_vlan, req.vlan)
        if physnet and "vlan" not in errors:
            for n in existing:
                if n.kind == ovn_networks.PROVIDER and n.physnet == physnet and n.vlan == vlan:
                    what = f"VLAN {vlan}" if vlan is not None else "untagged traffic"
                    errors["vlan"] = f"{what} on {physnet} is already used by network {n.tenant}/{n.name}"
                    break
    cidr = run("cidr", check_cidr, req.cidr)
    if cidr is not None:
        if tenant:
            for n in existing:
                if n.tenant == tenant and n.cidr and cidr.overlaps(ipaddress.IPv4Network(n.cidr)):
                    errors["cidr"] = f"{cidr} overlaps {n.cidr} of network {n.name} in tenant {tenant}"
                    break
        run("gateway", check_gateway, req.gateway, cidr)
        run("exclude", check_exclude, req.exclude, cidr)
    if req.dhcp:
        run("lease_time", check_lease, req.lease_time)
    run("dns", check_dns, req.dns)
    run("mtu", check_mtu, req.mtu, kind or ovn_networks.OVERLAY)
    return errors


_FIELDS = ("tenant", "name", "kind", "physnet", "vlan", "cidr", "gateway", "lease_time", "dns", "mtu", "exclude")


# --------------------------------------------------------------------------- edit

#: What ``edit_network`` can change (nothing already handed out depends on it).
MUTABLE = ("dhcp", "lease_time", "dns", "mtu", "exclude")
#: What it refuses to change, with the reason shown to the operator.
IMMUTABLE = {
    "kind": "the kind (overlay/provider)",
    "cidr": "the CIDR (VM ports and router ports hold addresses in it)",
    "gateway": "the gateway (DHCP leases and router ports point at it)",
    "physnet": "the physnet",
    "vlan": "the VLAN (the localnet port and the hosts' trunks carry it)",
}


def _in_exclude(ip: ipaddress.IPv4Address, items) -> bool:
    for item in items:
        lo, _, hi = item.partition("..")
        if ipaddress.IPv4Address(lo) <= ip <= ipaddress.IPv4Address(hi or lo):
            return True
    return False


def check_edit(info: NetworkInfo, **changes) -> NetworkSpec:
    """The spec ``info`` becomes with ``changes`` applied (keys: :data:`MUTABLE` and
    :data:`IMMUTABLE`; a value of None means "keep"). An immutable field given with a value
    other than the current one raises ValidationError naming it and saying to create a new
    network instead; mutable fields are checked like at create. Pure (no OVN access)."""
    unknown = set(changes) - set(MUTABLE) - set(IMMUTABLE)
    if unknown:
        raise ValidationError(sorted(unknown)[0], "not a network setting")
    cur = ovn_networks.network_spec(info)
    cidr = ipaddress.IPv4Network(cur.cidr)
    for field_, what in IMMUTABLE.items():
        value = changes.get(field_)
        if value is None:
            continue
        if field_ == "vlan":
            same = check_vlan(value) == cur.vlan
        elif field_ == "cidr":
            same = str(check_cidr(str(value))) == cur.cidr
        elif field_ == "gateway":
            same = str(value).strip() == "" or check_gateway(str(value), cidr) == cur.gateway
        else:
            same = str(value).strip() == (getattr(cur, field_) or "")
        if not same:
            raise ValidationError(field_, f"{what} of {info.tenant}/{info.name} cannot change after creation; "
                                  "create a new network with the new value and move the VMs to it")
    dhcp = cur.dhcp if changes.get("dhcp") is None else bool(changes["dhcp"])
    lease = cur.lease_time if changes.get("lease_time") is None else check_lease(changes["lease_time"])
    dns = cur.dns if changes.get("dns") is None else check_dns(changes["dns"])
    mtu = cur.mtu if changes.get("mtu") is None else check_mtu(changes["mtu"], cur.kind)
    exclude = cur.exclude if changes.get("exclude") is None else check_exclude(changes["exclude"], cidr)
    return NetworkSpec(tenant=cur.tenant, name=cur.name, kind=cur.kind, cidr=cur.cidr,
                       gateway=cur.gateway, dhcp=dhcp, lease_time=lease, dns=dns, mtu=mtu,
                       physnet=cur.physnet, vlan=cur.vlan, exclude=exclude)


def edit_network(session, tenant: str, name: str, **changes) -> NetworkInfo:
    """Change what can change on an existing network without renumbering anything — ``dhcp``
    (bool), ``lease_time`` (s), ``dns`` (addresses; "" clears), ``mtu`` (bytes; "" = the kind's
    default), ``exclude`` (addresses/ranges; "" clears) — in ONE OVN transaction
    (:func:`backends.ovn.networks.update_network`). None (or absent) keeps a field.

    ``kind``/``cidr``/``gateway``/``physnet``/``vlan`` may be passed too (the TUI form sends
    everything): equal to the current value they are fine, different they are refused
    (ValidationError naming the field: create a new network instead). A new exclusion that
    covers an address a VM port already holds is refused (field "exclude"). Idempotent: the
    same values again write nothing (audit outcome "noop").

    Raises ReadOnlyError, NotFound, ValidationError (nothing written) or HostError.
    Audit: "network.edit" with the fields that changed.
    """
    def body(run: verb.VerbRun) -> NetworkInfo:
        api = nb_api(session)
        info = ovn_networks.find_network(api, name, tenant)
        spec = check_edit(info, **changes)
        old = ovn_networks.network_spec(info)
        newly = [x for x in spec.exclude if x not in old.exclude]
        if newly:
            for lsp, (vm, ips) in sorted(ovn_ports.port_ips(api, info.vm_ports).items()):
                for ip in ips:
                    if _in_exclude(ipaddress.IPv4Address(ip), newly):
                        who = f"VM {vm}'s port" if vm else "port"
                        raise ValidationError("exclude", f"{ip} is held by {who} {lsp}; "
                                              "exclude only addresses no port holds")
        changed = {f: getattr(spec, f) for f in MUTABLE if getattr(spec, f) != getattr(old, f)}
        if not changed:
            run.outcome = "noop"
            return info
        result = ovn_networks.update_network(api, spec)
        run.note(**{k: list(v) if isinstance(v, tuple) else v for k, v in changed.items()})
        return result
    return verb.run("network.edit", f"network {tenant}/{name}", body)
