"""The create verb's input rules, pure (no I/O): what `vm create`, the wizard (on every keystroke,
:func:`check_form`) and resize share. Each ``check_*`` returns the clean value or raises
:class:`ValidationError` naming the field. Units: RAM in MiB, disks in GiB, whole vCPUs.

:func:`growth_limits` is the rule for the live-growth ceilings a new domain gets.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Sequence

from ...config.inventory import Inventory, TemplateConfig
from .. import cloudinit
from ..errors import ConfigError, ValidationError

MAX_VCPUS = 64
MIN_RAM_MIB, MAX_RAM_MIB = 128, 1024 * 1024
MAX_DISK_GIB = 16 * 1024
MAX_NETWORKS = 8
# Live-growth ceilings set at create (see growth_limits): vCPUs up to GROW_VCPUS × the size (never
# more than the host's cores), RAM up to GROW_RAM × the size (never more than the host's RAM).
GROW_VCPUS = 4
GROW_RAM = 2
GROUP_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def _int(value, field: str) -> int:
    if isinstance(value, bool):
        raise ValidationError(field, "must be a whole number")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValidationError(field, "must be a whole number") from None


def check_name(value: str) -> str:
    """VM name = hostname: lowercase letters, digits, '-', 1-63."""
    return cloudinit.validate_hostname(value, "name")


def check_vcpus(value) -> int:
    """Whole vCPUs, 1..64."""
    n = _int(value, "vcpus")
    if not 1 <= n <= MAX_VCPUS:
        raise ValidationError("vcpus", f"1 to {MAX_VCPUS} whole vCPUs")
    return n


def check_ram(value) -> int:
    """RAM in MiB, 128..1048576."""
    n = _int(value, "ram")
    if not MIN_RAM_MIB <= n <= MAX_RAM_MIB:
        raise ValidationError("ram", f"{MIN_RAM_MIB} to {MAX_RAM_MIB} MiB")
    return n


def check_disk(value, min_gib: int = 1) -> int:
    """Disk in GiB, at least the template's size (``min_gib``)."""
    n = _int(value, "disk")
    if n < min_gib:
        raise ValidationError("disk", f"at least {min_gib} GiB (the template's size)")
    if n > MAX_DISK_GIB:
        raise ValidationError("disk", f"at most {MAX_DISK_GIB} GiB")
    return n


def check_tenant(inventory: Inventory, value: str) -> str:
    """A tenant name (lowercase, digits, '-'); any name works, inventory tenants carry quotas."""
    return cloudinit.validate_hostname(value, "tenant")


def check_template(inventory: Inventory, value: str) -> TemplateConfig:
    """The template of that name in the inventory."""
    try:
        return inventory.template(value)
    except ConfigError as exc:
        raise ValidationError("template", str(exc)) from None


def check_networks(names) -> tuple[str, ...]:
    """One to eight network names, no repeats (names only; existence is checked in OVN)."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    names = tuple(n for n in names if n)
    if not names:
        raise ValidationError("networks", "pick at least one network")
    if len(names) > MAX_NETWORKS:
        raise ValidationError("networks", f"at most {MAX_NETWORKS} networks")
    if len(set(names)) != len(names):
        raise ValidationError("networks", "a network is listed twice")
    return names


def check_host(inventory: Inventory, value: str | None) -> str | None:
    """None/'' = automatic; else a hypervisor in the inventory."""
    if not value:
        return None
    names = [h.name for h in inventory.hypervisors]
    if value not in names:
        raise ValidationError("host", f"no hypervisor {value!r} (hypervisors: {', '.join(names) or 'none'})")
    return value


#: ``--ip`` values that ask for no fixed address: ``auto`` (the first free one, picked at create)
#: and ``dynamic`` (OVN's IPAM assigns one).
IP_AUTO = ("auto", "dynamic")


def check_ip(value: str | None, network) -> str | None:
    """A fixed address asked for a NIC on ``network`` (a NetworkInfo: ``name``, ``cidr``,
    ``gateway``), checked before anything is created: an IPv4 host address inside the network's
    CIDR, not its network or broadcast address, not its gateway. None/''/``auto``/``dynamic``
    pass through (None for auto). Whether another port holds it is checked when the port is
    made (that needs OVN). Raises ValidationError("ip", …) naming the address and the subnet."""
    if value is None or not str(value).strip() or str(value).strip() == "auto":
        return None
    value = str(value).strip()
    if value == "dynamic":
        return value
    subnet = ipaddress.ip_network(network.cidr, strict=False)
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise ValidationError("ip", f"{value[:40]!r} is not an IPv4 address (network {network.name} is "
                              f"{subnet}; or use 'auto' / 'dynamic')") from None
    if ip.version != subnet.version:
        raise ValidationError("ip", f"{ip} is an IPv{ip.version} address; network {network.name} is IPv4 ({subnet})")
    if ip not in subnet:
        raise ValidationError("ip", f"{ip} is outside network {network.name}'s subnet {subnet}")
    if ip == subnet.network_address:
        raise ValidationError("ip", f"{ip} is the network address of {subnet}; pick a host address")
    if ip == subnet.broadcast_address:
        raise ValidationError("ip", f"{ip} is the broadcast address of {subnet}; pick a host address")
    if network.gateway and str(ip) == network.gateway:
        raise ValidationError("ip", f"{ip} is network {network.name}'s gateway; pick another host address")
    return str(ip)


def check_ips(values: Sequence[str | None], networks: Sequence) -> tuple[str | None, ...]:
    """:func:`check_ip` for each ``--ip`` against the network at the same position (one per
    network; an empty ``values`` means every address is automatic). Raises ValidationError("ip")."""
    if not values:
        return ()
    if len(values) != len(networks):
        raise ValidationError("ip", "give one --ip per --network (use 'auto' or 'dynamic' to skip one)")
    return tuple(check_ip(v, n) for v, n in zip(values, networks))


def check_max_vcpus(value, vcpus: int | None = None) -> int | None:
    """Live-growth ceiling in whole vCPUs: None/'' = automatic (:func:`growth_limits`' rule);
    else ``vcpus`` (the size; None = unknown, 1) to MAX_VCPUS. Field ``max-vcpus``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    n = _int(value, "max-vcpus")
    low = vcpus or 1
    if not low <= n <= MAX_VCPUS:
        raise ValidationError("max-vcpus", f"{low} (the vCPUs) to {MAX_VCPUS} whole vCPUs")
    return n


def check_max_ram(value, ram_mib: int | None = None) -> int | None:
    """Live-growth ceiling in whole MiB: None/'' = automatic (:func:`growth_limits`' rule);
    else ``ram_mib`` (the size; None = unknown, MIN_RAM_MIB) to MAX_RAM_MIB. Any whole MiB
    works (the automatic rule rounds to 128 MiB; libvirt/QEMU need no more). Field ``max-ram``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    n = _int(value, "max-ram")
    low = ram_mib or MIN_RAM_MIB
    if not low <= n <= MAX_RAM_MIB:
        raise ValidationError("max-ram", f"{low} (the RAM) to {MAX_RAM_MIB} MiB")
    return n


def growth_limits(vcpus: int, ram_mib: int, host_cores: int, host_ram_mib: int,
                  max_vcpus: int | None = None, max_ram_mib: int | None = None) -> tuple[int, int]:
    """The live-growth ceilings a new domain gets: ``(max vCPUs, max RAM MiB)``.

    Rule (when not given): vCPUs ``min(GROW_VCPUS × vcpus, host cores, MAX_VCPUS)``, RAM
    ``min(GROW_RAM × ram, host RAM)`` rounded down to a whole 128 MiB — never below the size
    itself. A running VM can be resized live (hot-plugged vCPUs, balloon) up to these; beyond
    them needs a restart (``vm resize`` raises the maximum in the config and says so). The
    guest kernel sizes its page tables for the RAM ceiling (~1.6 % of it), which is why RAM
    grows by 2× and not more. Given values are checked by :func:`check_max_vcpus` /
    :func:`check_max_ram` (ValidationError).
    ``host_cores``/``host_ram_mib``: libvirt ``getInfo()`` of the chosen host (0 = unknown).
    """
    max_vcpus = check_max_vcpus(max_vcpus, vcpus)
    max_ram_mib = check_max_ram(max_ram_mib, ram_mib)
    if max_vcpus is None:
        cap = min(GROW_VCPUS * vcpus, MAX_VCPUS)
        if host_cores > 0:
            cap = min(cap, host_cores)
        max_vcpus = max(vcpus, cap)
    if max_ram_mib is None:
        cap = GROW_RAM * ram_mib
        if host_ram_mib > 0:
            cap = min(cap, host_ram_mib)
        max_ram_mib = max(ram_mib, cap // 128 * 128)
    return max_vcpus, max_ram_mib


def check_group(value: str | None) -> str | None:
    """Anti-affinity group name (lowercase, digits, '-') or None."""
    if not value:
        return None
    if not GROUP_RE.match(value):
        raise ValidationError("anti-affinity", "lowercase letters, digits and '-'")
    return value


FORM_FIELDS = ("name", "tenant", "template", "vcpus", "ram", "max_vcpus", "max_ram", "disk", "host",
               "networks", "anti_affinity", "ssh_keys", "user", "password", "user_data")


def check_form(inventory: Inventory, form: dict, *, networks: dict[str, list[str]] | None = None,
               vm_names: set[str] | None = None, password_hash: str | None = None) -> dict[str, str]:
    """Check the wizard's fields as typed (strings); returns {field: reason} for the bad ones.

    Pure and cheap (no I/O, no hashing): the wizard calls it on every keystroke. ``networks``:
    {tenant: [network names]} when known (else names are checked on create); ``vm_names``: VM
    names already in the cluster when known; ``password_hash``: set once the password was hashed
    (the clear text is then gone from the form). Fields: :data:`FORM_FIELDS`.
    """
    errors: dict[str, str] = {}

    def run(field, fn):
        try:
            return fn()
        except ValidationError as exc:
            errors[field] = exc.reason
            return None

    name = form.get("name", "").strip()
    if run("name", lambda: check_name(name)) and vm_names and name in vm_names:
        errors["name"] = f"a VM named {name!r} exists already"
    tenant = form.get("tenant", "").strip()
    run("tenant", lambda: check_tenant(inventory, tenant))
    tpl = run("template", lambda: check_template(inventory, form.get("template") or ""))
    vcpus = run("vcpus", lambda: check_vcpus(form.get("vcpus", "")))
    ram = run("ram", lambda: check_ram(form.get("ram", "")))
    run("max_vcpus", lambda: check_max_vcpus(form.get("max_vcpus", ""), vcpus))  # '' = automatic
    run("max_ram", lambda: check_max_ram(form.get("max_ram", ""), ram))
    run("disk", lambda: check_disk(form.get("disk", "")))
    run("host", lambda: check_host(inventory, form.get("host") or None))
    nets = run("networks", lambda: check_networks(form.get("networks", "")))
    if nets and networks is not None and "tenant" not in errors:
        known = networks.get(tenant, [])
        missing = [n for n in nets if n not in known]
        if missing:
            errors["networks"] = (f"tenant {tenant} has no network {', '.join(missing)} "
                                  f"(networks: {', '.join(known) or 'none'})")
    run("anti_affinity", lambda: check_group((form.get("anti_affinity") or "").strip() or None))
    run("ssh_keys", lambda: cloudinit.parse_ssh_keys(form.get("ssh_keys", ""), "ssh-keys"))
    user = form.get("user", "").strip() or (tpl.default_user if tpl else "")
    run("user", lambda: cloudinit.validate_username(user))
    clear = form.get("password", "")
    if not password_hash:
        if not clear:
            errors["password"] = "required (stored only as a SHA-512 hash)"
        elif len(clear) < 8:
            errors["password"] = "use at least 8 characters"
    run("user_data", lambda: cloudinit.parse_extra_user_data(form.get("user_data", "")))
    return errors
