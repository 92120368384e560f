"""Operator-input checks of the OVN verbs (networks, routers, security groups): pure and cheap,
so the wizards call them on every keystroke. Each returns the normalised value or raises
:class:`~console.errors.ValidationError` whose ``field`` names the input and whose message says
what is allowed. Units: MTU in bytes, lease time in seconds.
"""

from __future__ import annotations

import ipaddress
from typing import Mapping, Sequence

from ...backends.ovn.networks import OVERLAY, OVERLAY_MTU, PROVIDER, PROVIDER_MTU
from ...config.inventory import NAME_RE
from ..errors import ValidationError

KINDS = (OVERLAY, PROVIDER)
MIN_MTU, MAX_MTU = 576, 9000
MIN_LEASE, MAX_LEASE = 60, 31_536_000


def check_name(value: str, field: str = "name") -> str:
    """A network/router/group name: lowercase letters, digits, '-', 1–63 chars."""
    value = (value or "").strip()
    if not NAME_RE.match(value):
        raise ValidationError(field, "use 1–63 lowercase letters, digits and '-', starting and ending with a letter or digit")
    return value


def check_kind(value: str) -> str:
    """``overlay`` or ``provider``."""
    value = (value or "").strip()
    if value not in KINDS:
        raise ValidationError("kind", "choose overlay (GENEVE between hypervisors) or provider (a physnet, optionally a VLAN)")
    return value


def check_cidr(value: str) -> ipaddress.IPv4Network:
    """An IPv4 network with prefix /8–/29, given by its network address."""
    value = (value or "").strip()
    try:
        iface = ipaddress.IPv4Interface(value)
    except ValueError:
        raise ValidationError("cidr", "an IPv4 network like 10.0.0.0/24") from None
    if "/" not in value:
        raise ValidationError("cidr", "give the prefix length too, like 10.0.0.0/24")
    net = iface.network
    if iface.ip != net.network_address:
        raise ValidationError("cidr", f"{value} has host bits set; did you mean {net}?")
    if not 8 <= net.prefixlen <= 29:
        raise ValidationError("cidr", "prefix length must be between /8 and /29")
    special = _special_use(net)
    if special:
        raise ValidationError("cidr", f"{net} is {special}, not usable for VM addresses; use a private "
                              f"range such as 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16")
    return net


def _special_use(net: ipaddress.IPv4Network) -> str | None:
    """What makes ``net`` unusable for a tenant subnet (multicast, reserved, loopback, link-local,
    "this network" 0.0.0.0/8), or None. Facts: Python's ipaddress flags (IANA special registries)."""
    for flag, what in (("is_multicast", "multicast (224.0.0.0/4)"), ("is_loopback", "loopback (127.0.0.0/8)"),
                       ("is_link_local", "link-local (169.254.0.0/16)"),
                       ("is_reserved", "reserved (240.0.0.0/4)"), ("is_unspecified", "unspecified")):
        if getattr(net, flag):
            return what
    if net.subnet_of(ipaddress.IPv4Network("0.0.0.0/8")):
        return "'this network' (0.0.0.0/8)"
    return None


def check_overlay_fields(kind: str, physnet: str | None, vlan) -> None:
    """An overlay network takes no physnet and no VLAN (those describe a provider network);
    giving one is a mistake, not something to ignore. Raises ValidationError("vlan"/"physnet")."""
    if kind != OVERLAY:
        return
    if vlan is not None and str(vlan).strip().lower() not in ("", "untagged", "none"):
        raise ValidationError("vlan", "an overlay network has no VLAN; use --kind provider with --physnet for a VLAN")
    if physnet is not None and str(physnet).strip():
        raise ValidationError("physnet", "an overlay network has no physnet; use --kind provider for a physnet")


def check_known_tenant(value: str, known: Sequence[str]) -> str:
    """``value`` must be one of the inventory's tenants (``known``, from ``[[tenants]]``) when
    it declares any; with none declared every valid name is accepted. Raises ValidationError("tenant")."""
    value = check_name(value, "tenant")
    if known and value not in known:
        raise ValidationError("tenant", f"no tenant {value!r} in the inventory (tenants: {', '.join(known)}); "
                              f"add it under [[tenants]] first")
    return value


def check_address(value: str, field: str) -> ipaddress.IPv4Address:
    """An IPv4 address; ValidationError on ``field`` otherwise."""
    try:
        return ipaddress.IPv4Address(value.strip())
    except ValueError:
        raise ValidationError(field, f"{value.strip()!r} is not an IPv4 address") from None


def check_gateway(value: str | None, cidr: ipaddress.IPv4Network) -> str:
    """The gateway: an address inside ``cidr`` (not its network or broadcast address);
    empty means the first host address."""
    if not value or not value.strip():
        return str(cidr.network_address + 1)
    gw = check_address(value, "gateway")
    if gw not in cidr:
        raise ValidationError("gateway", f"{gw} is outside {cidr}; use an address inside it (e.g. {cidr.network_address + 1})")
    if gw in (cidr.network_address, cidr.broadcast_address):
        raise ValidationError("gateway", f"{gw} is the network or broadcast address of {cidr}")
    return str(gw)


def check_lease(value) -> int:
    """DHCP lease time in seconds, 60 s to one year."""
    try:
        v = int(str(value).strip())
    except ValueError:
        raise ValidationError("lease_time", "whole seconds, e.g. 3600") from None
    if not MIN_LEASE <= v <= MAX_LEASE:
        raise ValidationError("lease_time", f"between {MIN_LEASE} and {MAX_LEASE} seconds")
    return v


def _split(value) -> list[str]:
    """Comma/space separated text, or a sequence, as a list of non-empty strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v]
    return [str(v).strip() for v in value if str(v).strip()]


def check_dns(value) -> tuple[str, ...]:
    """DNS servers: up to 4 IPv4 addresses, comma or space separated."""
    items = _split(value)
    if len(items) > 4:
        raise ValidationError("dns", "at most 4 DNS servers")
    return tuple(str(check_address(v, "dns")) for v in items)


def check_mtu(value, kind: str) -> int:
    """MTU in bytes, 576–9000; empty: 1400 for overlay (GENEVE in a 1500 underlay), 1500 for provider."""
    if value is None or str(value).strip() == "":
        return OVERLAY_MTU if kind == OVERLAY else PROVIDER_MTU
    try:
        v = int(str(value).strip())
    except ValueError:
        raise ValidationError("mtu", "whole bytes, e.g. 1400") from None
    if not MIN_MTU <= v <= MAX_MTU:
        raise ValidationError("mtu", f"between {MIN_MTU} and {MAX_MTU} bytes (overlay: at most 1442 on a 1500-byte underlay)")
    return v


def check_vlan(value) -> int | None:
    """VLAN id 1–4094, or None / "" / "untagged" for an untagged provider network."""
    if value is None or str(value).strip().lower() in ("", "untagged", "none"):
        return None
    try:
        v = int(str(value).strip())
    except ValueError:
        raise ValidationError("vlan", "a VLAN id 1–4094, or empty for untagged") from None
    if not 1 <= v <= 4094:
        raise ValidationError("vlan", f"{v} is not a VLAN id; use 1–4094, or empty for untagged")
    return v


def check_exclude(value, cidr: ipaddress.IPv4Network) -> tuple[str, ...]:
    """Excluded addresses: IPv4 addresses or ranges A..B (A <= B), all inside ``cidr``."""
    out = []
    for item in _split(value):
        if ".." in item:
            a, _, b = item.partition("..")
            lo, hi = check_address(a, "exclude"), check_address(b, "exclude")
            if lo > hi:
                raise ValidationError("exclude", f"range {item}: the first address must not be above the second")
            bad = [x for x in (lo, hi) if x not in cidr]
            if bad:
                raise ValidationError("exclude", f"{bad[0]} is outside {cidr}")
            out.append(f"{lo}..{hi}")
        else:
            a = check_address(item, "exclude")
            if a not in cidr:
                raise ValidationError("exclude", f"{a} is outside {cidr}")
            out.append(str(a))
    return tuple(out)


def check_physnet(value: str | None, physnets: Mapping[str, Sequence[str]] | None) -> str:
    """A physnet some hypervisor maps (``physnets``: {physnet: hosts}); None skips the check."""
    value = (value or "").strip()
    if not value:
        raise ValidationError("physnet", "a provider network needs a physnet"
                              + (f" (mapped here: {', '.join(physnets)})" if physnets else ""))
    if physnets is not None and not physnets.get(value):
        known = ", ".join(sorted(physnets)) or "none"
        raise ValidationError("physnet", f"no hypervisor maps physnet {value!r} in ovn-bridge-mappings (mapped: {known})")
    return value
