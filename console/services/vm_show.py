"""Read verb ``vm show``: one VM in detail, assembled from the existing readers (read-only, no
audit record, no guard: it changes nothing).

Sources: the domain (libvirt, via :func:`vm_lookup.status` / :func:`vm_lookup.locate` /
:func:`vm_lookup.domain_facts`: state, vCPUs, RAM in MiB, ``<virtdeck:instance>`` metadata, disks,
NICs), the storage pool (each disk volume's capacity, bytes → GiB), and OVN NB
(:func:`vm_lookup.ip`: each NIC's LSP, addresses and logical switch; :func:`ovn_ports.ports_of_vm`:
the network's human name kept in the LSP's ``external_ids``).
"""

from __future__ import annotations

from ...backends import storage
from ...backends.ovn import ports as ovn_ports
from ..errors import HostError
from . import metrics, vm_lookup

GiB = 1 << 30


def _disk_size_gib(conn, source: str | None) -> float | None:
    """Capacity of the pool volume at ``source`` in GiB (2 decimals), None when it is not a
    pool volume or cannot be read (the other facts still show)."""
    if not source:
        return None
    try:
        vol = storage.volume_at(conn, "", source)
        return round(storage.volume_info(vol).capacity_bytes / GiB, 2) if vol is not None else None
    except Exception:  # noqa: BLE001 - libvirtError or a vanished volume: a size is optional here
        return None


def show(session, name: str, host: str | None = None) -> dict:
    """Everything virtdeck knows about VM ``name`` (on ``host``, else found on any enabled one).

    Returns ``{"vm", "host", "state", "tenant", "template", "arch", "os", "vcpus", "max_vcpus", "memory_mib",
    "max_memory_mib", "seed", "disks": [{"target", "device", "source", "size_gib"}],
    "nics": [{"mac", "lsp", "ips", "switch", "network", "up"}], "now": {…} | None}``: memory in
    MiB, ``now`` a running VM's current figures (:func:`services.metrics.vm_now`: CPU %, RSS MiB,
    net/disk bytes per second over half a second; None when stopped or no figure), disk sizes in
    GiB (None when not a pool volume), ``seed`` the NoCloud seed volume's path (the cdrom), a NIC
    whose LSP is missing in OVN has ``lsp`` from the domain and no IPs/switch. ``arch`` is the
    domain's ``<os><type arch>``, ``os`` its template's OS name in the inventory (None when the
    template is not in the inventory).
    Raises VmNotFound, HostError (host or OVN NB unreachable), ValidationError (bad host).
    """
    facts = vm_lookup.status(session, name, host)
    h = facts["host"]
    _, dom = vm_lookup.locate(session, name, h)
    try:
        dfacts = vm_lookup.domain_facts(dom)
    except Exception as exc:  # noqa: BLE001 - libvirtError (services import no libvirt)
        raise HostError(f"{h}: reading {name}: {exc}") from None
    conn = session.libvirt(h)
    disks = [{"target": d.target, "device": d.device, "source": d.source,
              "size_gib": _disk_size_gib(conn, d.source) if d.device == "disk" else None}
             for d in dfacts.disks]
    nics = vm_lookup.ip(session, name, host=h)
    networks = {}
    if facts.get("tenant"):
        networks = {p.name: p.network for p in ovn_ports.ports_of_vm(vm_lookup._nb(session), facts["tenant"], name)}
    return {
        "vm": name, "host": h, "state": facts["state"], "tenant": facts["tenant"],
        "template": facts["template"], "arch": dfacts.arch, "os": _template_os(session, facts["template"]),
        "vcpus": facts["vcpus"], "max_vcpus": facts["max_vcpus"],
        "memory_mib": facts["memory_mib"], "max_memory_mib": facts["max_memory_mib"],
        # the NoCloud seed is the domain's cdrom (the metadata's seed field holds the volume for
        # some VMs and the instance-id for others: the device is the one fact that holds for both)
        "seed": next((d.source for d in dfacts.disks if d.device == "cdrom" and d.source), None),
        "disks": disks,
        "nics": [{"mac": n["mac"], "lsp": n["lsp"], "ips": n["ips"], "switch": n["switch"],
                  "network": networks.get(n["lsp"]), "up": n.get("up")} for n in nics],
        "now": metrics.vm_now(session, h, dom) if facts["state"] == "running" else None,
    }


def _template_os(session, template: str | None) -> str | None:
    """The inventory's OS name for ``template`` (None when unknown)."""
    t = next((t for t in session.inventory.templates if t.name == template), None) if template else None
    return t.os if t is not None else None


def show_lines(d: dict) -> list[str]:
    """The text form of :func:`show`'s dict (the CLI without ``--json`` and the console's
    details dialog)."""
    lines = [f"{d['vm']} on {d['host']}: {d['state']}, tenant {d['tenant'] or '-'}, "
             f"template {d['template'] or '-'}",
             f"  OS {d.get('os') or '?'}, arch {d.get('arch') or '?'}",
             f"  vCPUs {d['vcpus']} (max {d['max_vcpus']}), RAM {d['memory_mib']} MiB "
             f"(max {d['max_memory_mib']} MiB)",
             f"  seed {d['seed'] or '-'}"]
    now = metrics.vm_now_line(d.get("now"))
    if now:
        lines.append(now)
    for k in d["disks"]:
        size = f"{k['size_gib']:g} GiB" if k["size_gib"] is not None else "-"
        lines.append(f"  disk {k['target']:<5} {k['device']:<6} {size:>9}  {k['source'] or '-'}")
    for n in d["nics"]:
        where = f"{n['network']} ({n['switch']})" if n["network"] else (n["switch"] or "no port in OVN")
        lines.append(f"  nic  {n['mac'] or '?'}  {', '.join(n['ips']) or 'no address yet'}  "
                     f"on {where}  lsp {n['lsp'] or '-'}")
    if not d["nics"]:
        lines.append("  no network interfaces")
    return lines
