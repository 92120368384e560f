"""``vm move``: a stopped VM to another hypervisor (cold: disks copied through libvirt)."""

from __future__ import annotations

import time
from dataclasses import replace

from ...backends import domains, hostlock
from ...backends.ovn import vm_ports
from ..errors import HostError, ValidationError, VirtdeckError
from . import verb as verb_frame
from .vm_delete import _own_volumes
from .vm_lookup import (DomainFacts, OpResult, VmStateError, _find, _lookup_on, _nb, _Op, _run_verb,
                        state_name)

# ---------------------------------------------------------------------------------------------
# Move (cold)


def _copy_volume(sconn, shost: str, vol, tconn, thost: str, pool: str, progress=None) -> str:
    """Copy ``vol`` from ``shost`` into ``pool`` on ``thost`` under the same name, through the
    storage API (download to a private temporary file on this machine, then upload). Returns the
    new volume's path. Raises HostError."""
    import tempfile

    from ...backends import storage

    name = vol.name()
    with tempfile.NamedTemporaryFile(prefix="virtdeck-move-") as tmp:
        storage.download_volume(sconn, shost, vol, tmp)
        tmp.flush()
        info = storage.upload_volume(tconn, thost, pool, name, tmp.name, fmt="raw", progress=progress)
    return info.path


def _move_request(session, name: str, xml: str, facts: DomainFacts, to_host: str, snap):
    """The PlacementRequest a moved VM makes of ``to_host``: its current vCPUs/RAM, its arch
    (``<os><type arch>``), the physnets its provider networks need, its anti-affinity group and
    the hosts already holding a member of that group (from ``snap``, the target's
    placement.host_snapshot)."""
    from ...backends.scheduler import PlacementRequest

    arch = facts.arch or "x86_64"
    group = facts.group
    physnets = frozenset(vm_ports.vm_physnets(_nb(session), name, facts.interfaceids))
    group_hosts = frozenset()
    if group and any(d.group == group and d.name != name for d in snap.domains):
        group_hosts = frozenset({to_host})
    return PlacementRequest(vcpus=facts.vcpus, ram_mib=facts.memory_mib, arch=arch, physnets=physnets,
                            anti_affinity_group=group, group_hosts=group_hosts, pinned_host=to_host)


def _check_move(session, name: str, to_host: str, preq, snap=None, after_copy: bool = False) -> None:
    """Raise VirtdeckError naming every reason ``to_host`` cannot take the VM (the scheduler's
    filters on the host's facts now: enabled, arch, physnet bridge mappings, anti-affinity,
    vCPUs and RAM against the allocation ratios). ``snap``: the target's
    placement.host_snapshot if just read (None = read it now). A stopped VM holds no RAM, so
    free RAM only has to cover it when started there later (not checked)."""
    from ...backends.scheduler import place
    from . import placement

    if snap is None:
        snap = placement.host_snapshot(session, session.inventory.host(to_host), None)
    f = snap.facts
    if not f.reachable:
        raise HostError(f.error or f"{to_host} is not reachable")
    f = replace(f, ram_free_mib=max(f.ram_free_mib, preq.ram_mib))
    alloc = session.inventory.allocation
    verdict = place([f], preq, cpu_ratio=alloc.cpu_ratio, ram_ratio=alloc.ram_ratio).verdict(to_host)
    if verdict.refused:
        when = " (it filled up while the disks were copied; copies removed)" if after_copy else \
            "; nothing was copied"
        raise VirtdeckError(f"cannot move {name} to {to_host}: {verdict.summary}{when}")


def _drop_mark(held, tconn) -> None:
    """Undo of the target's owner mark: remove it when no copy it names is left."""
    from ...backends import storage
    if not any(storage.find_volume(tconn, held.host, held.mark.pool, v) for v in held.mark.volumes):
        held.drop()


def move(session, name: str, to_host: str, host: str | None = None) -> OpResult:
    """Move a STOPPED VM to hypervisor ``to_host``: copy its disk volumes (overlay, seed) through
    the libvirt storage API, define the domain there (same UUID, XML and metadata), re-home its
    OVN ports (``options:requested-chassis`` follows when set; the binding itself follows the
    interfaceid when the VM starts on the new chassis), then undefine it on the old host and
    delete the old volumes.

    Checks first, before anything is copied: the VM is shut off (VmStateError), ``to_host``
    answers, has no domain of that name, passes placement for this VM (scheduler filters: arch,
    a bridge mapping for every physnet its provider networks need, anti-affinity group, vCPUs and
    RAM against the allocation ratios — VirtdeckError "cannot move NAME to HOST: reasons"), has
    the template's volumes (a qcow2 overlay's backing file, the kernel/initrd of a direct kernel
    boot) at the same paths. After the copy, capacity is checked again under the target's
    placement lock (backends.hostlock) and the domain defined before the lock is let go. If a step on
    the target fails, what was created there is removed and the VM stays where it was.
    Same host → noop.
    """
    def body(op: _Op) -> OpResult:
        from ...backends import storage

        dom = _find(op, session, host)
        src = op.host
        op.details.update({"from": src, "to": to_host})
        if to_host == src:
            return op.result("noop", f"{name} is already on {src}")
        hc = session.inventory.host(to_host)
        if not hc.hypervisor or not hc.enabled:
            raise ValidationError("--to", f"{to_host} is not an enabled hypervisor")
        if domains.is_active(dom, src):
            raise VmStateError(f"{name} on {src} is {state_name(dom)}; shut it down before moving it")
        sconn = session.libvirt(src)
        tconn = session.libvirt(to_host)
        if _lookup_on(session, to_host, name) is not None:
            raise VirtdeckError(f"{to_host} already has a domain named {name}")
        xml = domains.xml(dom, src, inactive=True, secure=True)
        facts = domains.parse(xml)
        from . import placement
        snap = placement.host_snapshot(session, hc, None)  # read the target once for both
        preq = _move_request(session, name, xml, facts, to_host, snap)
        _check_move(session, name, to_host, preq, snap)

        # What to copy, and what must already be on the target.
        to_copy = []
        needed = [p for p in (facts.kernel, facts.initrd) if p]
        owned, shared = _own_volumes(session, sconn, src, facts.disks)
        needed += shared
        for vol, pool in owned:
            info = storage.volume_info(vol)
            if info.backing_path:
                needed.append(info.backing_path)
            to_copy.append((vol, pool, info.path))
        missing = [p for p in needed if storage.volume_at(tconn, to_host, p) is None]
        if missing:
            raise VirtdeckError(f"{to_host} lacks {', '.join(missing)} (the template's files must be there "
                                f"at the same paths; `virtdeck template add` puts them on every host)")
        for vol, pool, path in to_copy:
            storage.get_pool(tconn, to_host, pool)
            if storage.find_volume(tconn, to_host, pool, vol.name()) is not None:
                raise VirtdeckError(f"{to_host} already has a volume {pool}/{vol.name()}; remove it or rename the VM")

        t0 = time.monotonic()
        # Everything made on the target is undone, in reverse, if a later step fails (the source
        # copy is only touched once the target holds the VM).
        undo = verb_frame.Undo()
        held = None
        try:
            if to_copy:
                # the target's owner mark names the copies before they exist (drift check: a
                # move killed mid-copy leaves volumes reconcile can claim), held while this runs
                from ...backends import owner_marks
                held = owner_marks.claim(session, to_host, owner_marks.new_mark(
                    name, facts.tenant or "", to_copy[0][1], [v.name() for v, _, _ in to_copy]))
                undo.on_undo("copy", f"drop the owner mark of {name} on {to_host}",
                             lambda: _drop_mark(held, tconn))
            for vol, pool, path in to_copy:
                new_path = _copy_volume(sconn, src, vol, tconn, to_host, pool)
                undo.on_undo("copy", f"delete volume {pool}/{vol.name()} on {to_host}",
                             lambda p=pool, n=vol.name(): storage.delete_volume(tconn, to_host, p, n))
                if new_path != path:
                    xml = xml.replace(f"'{path}'", f"'{new_path}'").replace(f'"{path}"', f'"{new_path}"')
            # Copies made: re-check the target under its placement lock (another console may have
            # filled it meanwhile) and define there before letting go of the lock. Undo first, by
            # the VM's UUID on the target only: a lost answer may still have defined it.
            with hostlock.acquire(session, to_host):
                _check_move(session, name, to_host, preq, after_copy=True)
                undo.on_undo("define", f"undefine {name} on {to_host}",
                             lambda: domains.remove(tconn, to_host, facts.uuid, name))
                domains.define(tconn, to_host, xml)
            # The VM exists on the target now: retire the source definition (its NVRAM stays).
            if domains.is_persistent(dom, src):
                try:
                    domains.undefine(dom, src, name, missing_ok=False, keep_nvram=True)
                except HostError as exc:
                    raise HostError(f"{src}: cannot undefine {name} there, move undone: "
                                    f"{domains.why(exc)}") from None
        except BaseException:
            undo.rollback()
            raise
        finally:
            if held is not None:
                held.release()
        problems = []
        for vol, pool, _ in to_copy:
            try:
                storage.remove_volume(vol, src)
            except HostError as exc:
                problems.append(f"old volume {vol.name()} on {src}: {domains.message(exc).removeprefix(f'{src}: deleting volume {vol.name()}: ')}")
        if facts.serial_log and facts.serial_log.startswith("/var/log/libvirt/"):
            try:  # the old console log stays behind otherwise (best effort)
                session.run(src, ["rm", "-f", "--", facts.serial_log], timeout=10)
            except VirtdeckError:
                pass
        # Re-home the ports.
        rehomed = []
        try:
            rehomed = vm_ports.rehome(_nb(session), name, facts.interfaceids, to_host)
        except Exception as exc:  # noqa: BLE001 - ovsdbapp raises assorted types
            problems.append(f"OVN ports: {exc}")
        op.host = to_host
        op.details.update(volumes=[v.name() for v, _, _ in to_copy], seconds=round(time.monotonic() - t0, 1),
                          ports_rehomed=rehomed)
        if problems:
            raise HostError(f"{name} moved from {src} to {to_host} but: " + "; ".join(problems))
        return op.result("ok", f"{name} moved from {src} to {to_host} ({len(to_copy)} volume(s) copied in "
                         f"{time.monotonic() - t0:.1f} s)")
    return _run_verb("vm.move", name, body)
