"""``virtdeck host drain NAME [--move-to HOST]``: what runs on a host, and moving the stopped VMs
off it through :func:`console.services.vm_move.move` (disk copied through libvirt, ports
re-homed, one ``vm.move`` audit record per VM).

Running or paused VMs are never stopped here: they are listed with the command that shuts them
down, so the operator decides. A drained host is not disabled by this verb (``host disable``
does that; the result says when placement can still pick the host).
"""

from __future__ import annotations

from ...backends import domains
from ..errors import ValidationError, VirtdeckError
from . import verb as verb_frame


def _vms(session, name: str) -> list[dict]:
    """``[{"name", "state", "tenant", "vcpus", "memory_mib"}, …]`` on host ``name`` (sizes as
    placement counts them: persistent vCPUs, ``<currentMemory>`` MiB). Raises HostError."""
    vms = domains.list_vms(session.libvirt(name), name)
    return [{"name": v.name, "state": v.state, "tenant": v.tenant, "vcpus": v.vcpus,
             "memory_mib": v.memory_mib} for v in sorted(vms, key=lambda v: v.name)]


def drain(session, name: str, move_to: str | None = None) -> dict:
    """List the VMs on hypervisor ``name``; with ``move_to``, move every shut-off one there
    (each through ``vm_move.move``; one failing does not stop the others).

    Returns ``{"host", "enabled", "vms": [...], "moved": [vm, …], "failed": {vm: reason},
    "left": [{"name", "state", "fix"}, …]}`` — ``left``: what still lives there and the command
    that moves it on. Raises HostError (the host does not answer), ConfigError (no such host, or
    no such ``move_to``), ValidationError (``move_to`` is ``name`` itself or not a hypervisor),
    ReadOnlyError (``move_to`` under --readonly). Only ``move_to`` is audited (``host.drain``).
    """
    hc = session.inventory.host(name)
    if move_to is not None:  # refused before anything is read or moved
        target = session.inventory.host(move_to)  # ConfigError naming the known hosts
        if move_to == name:
            raise ValidationError("--move-to", f"{name} is the host being drained; name another hypervisor")
        if not target.hypervisor:
            raise ValidationError("--move-to", f"{move_to} is not a hypervisor")
    if not move_to:
        return verb_frame.run("host.drain", f"host {name}", lambda _r: _listing(session, name, hc),
                              mutating=False)

    def body(run: verb_frame.VerbRun) -> dict:
        from . import vm_move
        run.host = name
        out = _listing(session, name, hc)
        for vm in out["vms"]:
            if vm["state"] != "shutoff":
                continue
            try:
                vm_move.move(session, vm["name"], to_host=move_to, host=name)
                out["moved"].append(vm["name"])
            except VirtdeckError as exc:
                out["failed"][vm["name"]] = str(exc)
        out["left"] = [row for row in out["left"] if row["name"] not in out["moved"]]
        run.note(to=move_to, moved=out["moved"], failed=sorted(out["failed"]))
        if not out["moved"]:
            run.outcome = "noop"
        return out
    return verb_frame.run("host.drain", f"host {name}", body)


def _listing(session, name: str, hc) -> dict:
    vms = _vms(session, name)
    left = []
    for vm in vms:
        if vm["state"] == "shutoff":
            fix = f"virtdeck host drain {name} --move-to HOST"
        else:
            fix = f"virtdeck vm shutdown {vm['name']} --host {name}, then drain again"
        left.append({"name": vm["name"], "state": vm["state"], "fix": fix})
    return {"host": name, "enabled": hc.enabled, "vms": vms, "moved": [], "failed": {}, "left": left}


def drain_text(result: dict) -> list[str]:
    """:func:`drain`'s result as text lines."""
    out = []
    for vm in result["moved"]:
        out.append(f"moved {vm}")
    for vm, why in result["failed"].items():
        out.append(f"not moved {vm}: {why}")
    if not result["left"]:
        out.append(f"{result['host']}: no VMs left")
    for row in result["left"]:
        out.append(f"{row['name']:<24} {row['state']:<10} {row['fix']}")
    if result["enabled"]:
        out.append(f"(placement can still pick {result['host']}: virtdeck host disable {result['host']})")
    return out
