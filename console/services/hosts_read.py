"""``virtdeck host list`` / ``host show``: the hypervisors as the inventory and libvirt see them.

Read-only (no guard, no audit). Facts: the inventory (address, enabled, reason, role) and, per
enabled hypervisor, :func:`backends.domains.host_capacity` (one ``getInfo``, one
``getFreeMemory``, every domain's persistent sizes: what placement counts). Capacity =
cores × ``[allocation] cpu_ratio`` vCPUs and RAM total × ``ram_ratio`` MiB.
"""

from __future__ import annotations

import concurrent.futures

from ...backends import domains
from ..errors import NotFoundError, VirtdeckError
from .metrics import host_now, host_now_line


def _row(inv, hc, cap=None, error: str | None = None) -> dict:
    alloc = inv.allocation
    row = {"name": hc.name, "address": hc.address, "hypervisor": hc.hypervisor, "enabled": hc.enabled,
           "reason": hc.disabled_reason, "domain_type": hc.domain_type,
           "state": ("disabled" if not hc.enabled else "unreachable" if error else "up") if hc.hypervisor
           else "not a hypervisor",
           "error": error, "vms": None, "running": None, "cores": None, "vcpus": None, "vcpus_max": None,
           "memory_mib": None, "memory_max_mib": None, "memory_total_mib": None, "memory_free_mib": None}
    if cap is not None:
        row.update(vms=len(cap.domains), cores=cap.cores, vcpus=cap.alloc_vcpus,
                   vcpus_max=int(cap.cores * alloc.cpu_ratio), memory_mib=cap.alloc_ram_mib,
                   memory_max_mib=int(cap.ram_total_mib * alloc.ram_ratio),
                   memory_total_mib=cap.ram_total_mib, memory_free_mib=cap.ram_free_mib)
    return row


def list_hosts(session) -> tuple[list[dict], dict[str, str]]:
    """Every host of the inventory, in its order.

    Returns ``(rows, unreachable)``: rows ``{"name", "address", "hypervisor", "enabled",
    "reason", "domain_type", "state" (up | unreachable | disabled | not a hypervisor), "error",
    "vms" (defined domains), "cores", "vcpus" (allocated), "vcpus_max" (cores × cpu_ratio),
    "memory_mib" (allocated, MiB), "memory_max_mib" (total × ram_ratio), "memory_total_mib",
    "memory_free_mib", "now"}`` (capacity fields None when not read; ``now``: the current
    figures, :func:`services.metrics.host_now`, half a second of samples); ``unreachable``: ``{host: reason}``
    of enabled hypervisors that did not answer. Disabled hosts are not contacted."""
    inv = session.inventory
    probe = [h for h in inv.hosts if h.hypervisor and h.enabled]
    caps: dict[str, object] = {}
    down: dict[str, str] = {}
    nows: dict[str, dict | None] = {}

    def one(name: str):
        cap = domains.host_capacity(session.libvirt(name), name)
        nows[name] = host_now(session, name)
        return cap

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(probe))) as pool:
        futures = {pool.submit(one, h.name): h.name for h in probe}
        for fut in concurrent.futures.as_completed(futures):
            name = futures[fut]
            try:
                caps[name] = fut.result()
            except VirtdeckError as exc:
                down[name] = str(exc)
    rows = [dict(_row(inv, h, caps.get(h.name), down.get(h.name)), now=nows.get(h.name))
            for h in inv.hosts]
    return rows, down


def show_host(session, name: str) -> dict:
    """One host: the :func:`list_hosts` row plus ``"vms"`` as a list (``{"name", "state",
    "tenant", "vcpus", "memory_mib"}``, by name) and ``"physnets"`` (its ovn-bridge-mappings).

    Raises NotFoundError (not in the inventory), HostError (an enabled hypervisor that does not
    answer)."""
    inv = session.inventory
    hc = next((h for h in inv.hosts if h.name == name), None)
    if hc is None:
        raise NotFoundError(f"no host named {name!r} in the inventory (hosts: "
                            f"{', '.join(h.name for h in inv.hosts) or 'none'}); see virtdeck host list")
    if not hc.hypervisor or not hc.enabled:
        return dict(_row(inv, hc), vm_list=[], physnets=[])
    from .placement import bridge_mappings
    cap = domains.host_capacity(session.libvirt(name), name)
    vms = sorted(domains.list_vms(session.libvirt(name), name), key=lambda v: v.name)
    try:
        physnets, physnets_error = sorted(bridge_mappings(session, name)), None
    except VirtdeckError as exc:
        physnets, physnets_error = [], str(exc)
    return dict(_row(inv, hc, cap), running=sum(1 for v in vms if v.state == "running"),
                now=host_now(session, name),
                vm_list=[{"name": v.name, "state": v.state, "tenant": v.tenant, "vcpus": v.vcpus,
                          "memory_mib": v.memory_mib} for v in vms],
                physnets=physnets, physnets_error=physnets_error)


def _cut(text: str, width: int) -> str:
    return (text if len(text) <= width else text[:width - 1] + "…").ljust(width)


def show_lines(res: dict) -> list[str]:
    """:func:`show_host`'s result as text lines."""
    head = f"{res['name']} ({res['address']}): {res['state']}"
    if res.get("reason"):
        head += f" ({res['reason']})"
    lines = [head]
    if res.get("cores") is not None:
        lines += [f"  vCPUs   {res['vcpus']} of {res['vcpus_max']} ({res['cores']} cores)",
                  f"  RAM     {res['memory_mib']} of {res['memory_max_mib']} MiB "
                  f"({res['memory_free_mib']} MiB free of {res['memory_total_mib']})",
                  f"  VMs     {res['vms']} defined, {res.get('running') or 0} running",
                  f"  physnets {', '.join(res.get('physnets') or []) or ('unknown' if res.get('physnets_error') else 'none')}"]
        if res.get("physnets_error"):  # unreadable is not "maps none": say why, wrapped to 80
            import textwrap
            lines += textwrap.wrap(res["physnets_error"], 80, initial_indent=" " * 10,
                                   subsequent_indent=" " * 10, break_on_hyphens=False)
        now = host_now_line(res.get("now"))
        if now:  # wrapped under its label to stay within 80 columns
            import textwrap
            lines += textwrap.wrap(now, 80, subsequent_indent=" " * 10, break_on_hyphens=False)
    for v in res.get("vm_list") or []:  # names cut to keep a line within 80 columns
        lines.append(f"    {_cut(v['name'], 28)} {v['state']:<9} {v['vcpus']:>2} vCPU {v['memory_mib']:>6} MiB  "
                     f"{_cut(v['tenant'] or '-', 16).rstrip()}")
    return lines
