"""``virtdeck tenant list`` / ``tenant show``: each tenant's usage against its quota.

Read-only (no guard, no audit). Usage comes from the systems of record: VMs from every enabled
hypervisor's domains (their ``virtdeck:tenant`` metadata; sizes as placement counts them:
persistent vCPUs and ``<currentMemory>`` MiB, shut-off VMs included), networks from OVN NB
(``virtdeck:tenant`` external_ids). Quotas come from the inventory's ``[[tenants]]``
(``max_vms``, ``max_vcpus``, ``max_ram_mib``; None = unlimited; networks have no quota).
A tenant is listed when the inventory names it or anything in the cloud belongs to it.
"""

from __future__ import annotations

from ..errors import NotFoundError, VirtdeckError


def _usage(session) -> tuple[dict[str, dict], dict[str, str]]:
    from .network import list_networks
    from .vm_lookup import list_vms
    vms, down = list_vms(session)
    down = dict(down)
    try:
        nets = list_networks(session)
    except VirtdeckError as exc:
        nets = []
        down["ovn"] = str(exc)
    inv = session.inventory
    out: dict[str, dict] = {}

    def entry(name: str) -> dict:
        if name not in out:
            q = next((t for t in inv.tenants if t.name == name), None)
            out[name] = {"name": name, "in_inventory": q is not None,
                         "vms": 0, "vcpus": 0, "memory_mib": 0, "networks": 0,
                         "max_vms": q.max_vms if q else None, "max_vcpus": q.max_vcpus if q else None,
                         "max_ram_mib": q.max_ram_mib if q else None, "vm_names": [], "network_names": []}
        return out[name]

    for t in inv.tenants:
        entry(t.name)
    for v in vms:
        if not v.get("tenant"):
            continue  # a domain virtdeck did not create
        e = entry(v["tenant"])
        e["vms"] += 1
        e["vcpus"] += v["vcpus"] or 0
        e["memory_mib"] += v["memory_mib"] or 0
        e["vm_names"].append(v["name"])
    for n in nets:
        e = entry(n.tenant)
        e["networks"] += 1
        e["network_names"].append(n.name)
    return out, down


def list_tenants(session) -> tuple[list[dict], dict[str, str]]:
    """Every tenant, by name. Returns ``(rows, unreachable)``: rows ``{"name", "in_inventory",
    "vms", "vcpus", "memory_mib" (MiB), "networks", "max_vms", "max_vcpus", "max_ram_mib"}``
    (max None = unlimited); ``unreachable``: ``{host or "ovn": reason}`` — what did not answer,
    so the usage shown is a lower bound."""
    usage, down = _usage(session)
    rows = []
    for name in sorted(usage):
        row = dict(usage[name])
        row.pop("vm_names")
        row.pop("network_names")
        rows.append(row)
    return rows, down


def show_tenant(session, name: str) -> dict:
    """One tenant: the :func:`list_tenants` row plus ``"vm_names"``, ``"network_names"``
    (sorted) and ``"unreachable"``. Raises NotFoundError when neither the inventory nor the
    cloud knows the tenant."""
    usage, down = _usage(session)
    if name not in usage:
        raise NotFoundError(f"no tenant named {name!r}: not in the inventory and nothing in the cloud "
                            f"belongs to it; see virtdeck tenant list")
    row = dict(usage[name])
    row["vm_names"] = sorted(row["vm_names"])
    row["network_names"] = sorted(row["network_names"])
    row["unreachable"] = down
    return row


def of_quota(used: int, limit: int | None) -> str:
    """``"3/10"``, or ``"3"`` when unlimited."""
    return f"{used}/{limit}" if limit is not None else str(used)


def show_lines(res: dict) -> list[str]:
    """:func:`show_tenant`'s result as text lines."""
    lines = [f"tenant {res['name']}" + ("" if res["in_inventory"] else " (not in the inventory: no quota)"),
             f"  VMs       {of_quota(res['vms'], res['max_vms'])}",
             f"  vCPUs     {of_quota(res['vcpus'], res['max_vcpus'])}",
             f"  RAM MiB   {of_quota(res['memory_mib'], res['max_ram_mib'])}",
             f"  networks  {res['networks']}"]
    if res["vm_names"]:
        lines.append(f"  vms: {', '.join(res['vm_names'])}")
    if res["network_names"]:
        lines.append(f"  networks: {', '.join(res['network_names'])}")
    for h, why in sorted(res.get("unreachable", {}).items()):
        lines.append(f"  (not counted: {h}: {why})")
    return lines
