"""``vm resize``: vCPUs / RAM (MiB) of one VM, checked against its host's capacity first."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from ...backends import domains, hostlock
from ..errors import HostError, ValidationError, VirtdeckError
from .vm_lookup import OpResult, _find, _Op, _run_verb, domain_facts

# ---------------------------------------------------------------------------------------------
# Placement facts (for resize and move)


def host_facts(session, host: str, exclude_uuid: str | None = None):
    """:class:`backends.scheduler.HostFacts` of ``host`` from :func:`backends.domains.host_capacity`
    (the same reader create's placement uses: every defined domain's persistent vCPUs and
    ``<currentMemory>`` in MiB, not the live balloon), leaving out the domain ``exclude_uuid``
    (the VM being resized). An unreachable host comes back ``reachable=False`` with the reason.
    Physnets are not read (resize of a VM keeps its networks)."""
    from ...backends.scheduler import HostFacts

    hc = session.inventory.host(host)
    try:
        cap = domains.host_capacity(session.libvirt(host), host, exclude_uuid=exclude_uuid)
    except VirtdeckError as exc:
        return HostFacts(host, enabled=hc.enabled, reachable=False, error=str(exc))
    return HostFacts(host, enabled=hc.enabled, reachable=True, arch=cap.arch, cores=cap.cores,
                     ram_total_mib=cap.ram_total_mib, ram_free_mib=cap.ram_free_mib,
                     alloc_vcpus=cap.alloc_vcpus, alloc_ram_mib=cap.alloc_ram_mib)


def _check_fits(session, host: str, facts, vcpus: int, ram_mib: int, arch: str | None,
                what: str) -> None:
    """Raise VirtdeckError with the scheduler's reasons when ``host`` cannot hold the VM."""
    from ...backends.scheduler import PlacementRequest, place

    alloc = session.inventory.allocation
    req = PlacementRequest(vcpus=vcpus, ram_mib=ram_mib, arch=arch or facts.arch or "x86_64", pinned_host=host)
    placement = place([facts], req, cpu_ratio=alloc.cpu_ratio, ram_ratio=alloc.ram_ratio)
    if not placement.ok:
        raise VirtdeckError(f"{host} cannot hold {what} ({vcpus} vCPU, {ram_mib} MiB): "
                            f"{placement.verdict(host).summary}")


# ---------------------------------------------------------------------------------------------
# Resize


def _apply_live(live: bool, new: int, live_max: int, unit: str, set_live: Callable[[], None]) -> str:
    """Apply one resource's new size to the running domain when it can be, and say when it takes
    effect: ``"now"``, or ``"next boot"`` with why not now (``live`` off, above the domain's live
    maximum ``live_max`` in ``unit`` — vCPUs or MiB —, or libvirt refused the live change)."""
    if not live:
        return "next boot"
    if new > live_max:
        return f"next boot (live maximum is {live_max} {unit}, set at create; restart the VM to apply)"
    try:
        set_live()
    except HostError as exc:
        return f"next boot (live change refused: {domains.why(exc)})"
    return "now"


def resize(session, name: str, vcpus: int | None = None, memory_mib: int | None = None,
           host: str | None = None, live: bool = True) -> OpResult:
    """Change a VM's vCPUs and/or RAM (MiB).

    The persistent config is always changed (raising the ``<vcpu>`` / ``<memory>`` maximum when
    the new size is above it). On a running VM (and ``live``) the change is also applied now
    where the domain allows it: vCPUs up to its maximum (hot-plug), RAM up to ``<memory>``
    (balloon) — VMs from ``vm create`` get ceilings above their size (provision_checks.growth_limits);
    beyond them it takes effect at the next boot (``details["applied"]`` says which, per
    resource: "now", "next boot" or "next boot (live maximum is …; restart the VM to apply)"). The host's
    capacity is re-checked with the scheduler's filters first (allocation ratios, free RAM for a
    running VM), leaving the VM's own current share out. Same size → noop.

    Raises ValidationError (bad size), VirtdeckError (host too small, with the reasons),
    HostError (libvirt refused; the config change is rolled back).
    """
    if vcpus is None and memory_mib is None:
        raise ValidationError("size", "give --vcpus and/or --memory (MiB)")
    if vcpus is not None and (not isinstance(vcpus, int) or vcpus < 1 or vcpus > 256):
        raise ValidationError("vcpus", "a whole number from 1 to 256")
    if memory_mib is not None and (not isinstance(memory_mib, int) or memory_mib < 64 or memory_mib > 4 * 1024 * 1024):
        raise ValidationError("memory", "whole MiB, at least 64")

    def body(op: _Op) -> OpResult:
        dom = _find(op, session, host)
        cfg = domain_facts(dom, inactive=True)
        active = domains.is_active(dom, op.host)
        cur = domain_facts(dom) if active else cfg
        new_v = vcpus if vcpus is not None else cfg.vcpus
        new_m = memory_mib if memory_mib is not None else cfg.memory_mib
        same_v = vcpus is None or (new_v == cfg.vcpus and (not active or new_v == cur.vcpus))
        same_m = memory_mib is None or (new_m == cfg.memory_mib and (not active or new_m == cur.memory_mib))
        if same_v and same_m:
            return op.result("noop", f"{name} already has {new_v} vCPU and {new_m} MiB", vcpus=new_v, memory_mib=new_m)
        # Growing: check and apply under the host's placement lock (backends.hostlock), so a
        # create from another console cannot take the same room meanwhile.
        growing = new_v > cfg.vcpus or new_m > cfg.memory_mib
        lock = hostlock.acquire(session, op.host) if growing else None
        try:
            return _resize_checked(op, dom, cfg, cur, active, new_v, new_m)
        finally:
            if lock is not None:
                lock.release()

    def _resize_checked(op: _Op, dom, cfg, cur, active, new_v, new_m) -> OpResult:
        facts = host_facts(session, op.host, exclude_uuid=cfg.uuid)
        if not facts.reachable:
            raise HostError(facts.error or f"{op.host} is not reachable")
        if active:
            facts = replace(facts, ram_free_mib=facts.ram_free_mib + cur.memory_mib)
        else:
            facts = replace(facts, ram_free_mib=max(facts.ram_free_mib, new_m))  # no RAM held while stopped
        _check_fits(session, op.host, facts, new_v, new_m, None, name)

        undo: list[Callable[[], None]] = []
        h = op.host
        try:
            if new_v != cfg.vcpus:
                if new_v > cfg.max_vcpus:
                    domains.set_vcpus(dom, h, new_v, maximum=True)
                    undo.append(lambda: domains.set_vcpus(dom, h, cfg.max_vcpus, maximum=True))
                domains.set_vcpus(dom, h, new_v)
                undo.append(lambda: domains.set_vcpus(dom, h, cfg.vcpus))
            if new_m != cfg.memory_mib:
                if new_m > cfg.max_memory_mib:
                    domains.set_memory(dom, h, new_m, maximum=True)
                    undo.append(lambda: domains.set_memory(dom, h, cfg.max_memory_mib, maximum=True))
                domains.set_memory(dom, h, new_m)
        except HostError as exc:
            for fn in reversed(undo):
                try:
                    fn()
                except HostError:
                    pass
            raise HostError(f"{h}: resize {name} refused: {domains.why(exc)} (nothing changed)") from None

        applied: dict[str, str] = {}
        if active:
            if vcpus is not None and new_v != cur.vcpus:
                applied["vcpus"] = _apply_live(live, new_v, cur.max_vcpus, "vCPUs",
                                               lambda: domains.set_vcpus(dom, h, new_v, config=False, live=True))
            if memory_mib is not None and new_m != cur.memory_mib:
                applied["memory"] = _apply_live(live, new_m, cur.max_memory_mib, "MiB",
                                                lambda: domains.set_memory(dom, h, new_m, config=False, live=True))
        else:
            if new_v != cfg.vcpus:
                applied["vcpus"] = "next boot"
            if new_m != cfg.memory_mib:
                applied["memory"] = "next boot"
        when = "; ".join(f"{k} {v}" for k, v in applied.items()) or "config only"
        if active and any(v.startswith("next boot") for v in applied.values()):
            when += " — a restart (shutdown + start) is needed for the rest"
        return op.result("ok", f"{name} on {op.host} resized to {new_v} vCPU / {new_m} MiB ({when})",
                         vcpus={"from": cfg.vcpus, "to": new_v}, memory_mib={"from": cfg.memory_mib, "to": new_m},
                         applied=applied)
    return _run_verb("vm.resize", name, body)
