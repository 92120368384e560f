"""``vm delete``: a VM and everything it owns (domain, own volumes, OVN rows, console log)."""

from __future__ import annotations

from typing import Any

from ...backends import domains, storage
from ...backends.ovn import vm_ports
from ..errors import HostError, VirtdeckError
from .vm_lookup import OpResult, VmNotFound, _find, _nb, _Op, _run_verb, domain_facts

# ---------------------------------------------------------------------------------------------
# Delete


def _template_volumes(session) -> set[tuple[str, str]]:
    return {(t.pool, t.volume) for t in session.inventory.templates}


def _own_volumes(session, conn, host: str, disks) -> tuple[list[tuple[Any, str]], list[str]]:
    """Split a domain's disks into ``[(volume, pool name)]`` it owns (its overlay, its seed) and
    the paths it only uses: not a pool volume, or a template volume shared by every VM.
    Raises HostError."""
    templates = _template_volumes(session)
    own, shared = [], []
    for d in disks:
        if not d.source:
            continue
        vol = storage.volume_at(conn, host, d.source)
        pool = storage.pool_of(vol, host) if vol is not None else None
        if vol is None or (pool, vol.name()) in templates:
            shared.append(d.source)
        else:
            own.append((vol, pool))
    return own, shared


def _not_searched(name: str, unreachable: dict[str, str]) -> str:
    hosts = ", ".join(sorted(unreachable))
    why = "; ".join(unreachable[h] for h in sorted(unreachable))
    return (f"{name} not deleted: {hosts} did not answer, and the VM may be there ({why}); nothing "
            f"was removed. Try again once {hosts} answer{'s' if len(unreachable) == 1 else ''}")


def delete(session, name: str, host: str | None = None, missing_ok: bool = False) -> OpResult:
    """Delete a VM and everything it owns: the domain (forced off first if it runs; managed save,
    snapshot metadata and NVRAM go with it), its disk volumes (the qcow2 overlay and the seed ISO;
    a template's base volume is never deleted), its LSPs, its DHCP_Options rows and its floating
    IPs (NAT rows) — see :func:`ovn_rows_of`.

    Order: NB is reached and the rows listed BEFORE anything is removed (an unreachable NB fails
    the verb with nothing touched); then domain, volumes, OVN rows in one transaction. A failure
    after the domain is gone does not stop the other removals; the error then lists what is left.
    No domain but OVN rows tagged with the VM → those are removed (outcome ok). Nothing at all →
    VmNotFound, or noop with ``missing_ok``. "No domain" is concluded only when EVERY enabled
    hypervisor answered (:func:`vm_lookup.locate`, each within :func:`vm_lookup.lookup_wait`
    seconds): if one could not be reached or libvirt there did not answer, HostError names it and
    nothing is removed (``missing_ok`` does not turn that into a noop).

    details: ``volumes`` removed (names), ``kept`` (paths left: not pool volumes or templates),
    ``ports``, ``dhcp``, ``nats`` removed.
    """
    def body(op: _Op) -> OpResult:
        try:
            dom = _find(op, session, host)
        except VmNotFound as exc:
            if not exc.conclusive:
                # A host that did not answer may hold the VM: removing its OVN rows now would cut
                # a running VM off its network and report a delete that did not happen.
                raise HostError(_not_searched(name, exc.unreachable)) from None
            disabled = [] if host else sorted(h.name for h in session.inventory.hypervisors if not h.enabled)
            if disabled:
                # A host in maintenance is not searched, but its VMs still run and hold ports.
                raise HostError(f"{name} not deleted: no enabled host has it, but {', '.join(disabled)} "
                                f"(disabled) was not searched and may; nothing was removed. Pass "
                                f"--host {disabled[0]} to delete it there") from None
            nb = _nb(session)
            rows = vm_ports.rows_of(nb, name)
            if rows:
                vm_ports.remove_rows(nb, rows)
                return op.result("ok", f"no domain named {name}; removed its leftover OVN rows",
                                 ports=list(rows.ports), dhcp=list(rows.dhcp), nats=[n for _, n in rows.nats])
            if missing_ok:
                return op.result("noop", f"no VM named {name}: nothing to delete")
            raise
        conn = session.libvirt(op.host)
        persistent = domains.is_persistent(dom, op.host)
        facts = domain_facts(dom, inactive=persistent)
        nb = _nb(session)  # fail before touching anything if NB is unreachable
        rows = vm_ports.rows_of(nb, name, facts.interfaceids)
        owned, kept = _own_volumes(session, conn, op.host, facts.disks)
        volumes = [vol for vol, _ in owned]
        try:
            domains.destroy(dom, op.host, missing_ok=False)
            if persistent:
                domains.undefine(dom, op.host, name, missing_ok=False)
        except domains.DomainGone:
            pass  # someone else (another console, virsh) removed it meanwhile: finish the cleanup
        problems: list[str] = []
        removed: list[str] = []
        for vol in volumes:
            vname = vol.name()
            try:
                storage.remove_volume(vol, op.host)
                removed.append(vname)
            except HostError as exc:
                problems.append(f"volume {vname} on {op.host}: {domains.why(exc)}")
        try:
            vm_ports.remove_rows(nb, rows)
        except Exception as exc:  # noqa: BLE001 - ovsdbapp raises assorted types
            problems.append(f"OVN rows {', '.join(rows.ports) or ''}: {exc or type(exc).__name__}")
        if facts.serial_log and facts.serial_log.startswith("/var/log/libvirt/"):
            # the guest's console log (written by virtlogd) goes too; not fatal if it cannot
            try:
                res = session.run(op.host, ["rm", "-f", "--", facts.serial_log], timeout=10)
                if res.ok:
                    op.details["serial_log"] = facts.serial_log
            except VirtdeckError:
                pass
        op.details.update(volumes=removed, kept=kept, ports=list(rows.ports), dhcp=list(rows.dhcp),
                          nats=[n for _, n in rows.nats])
        if not problems and hasattr(session, "run"):
            # the VM's owner mark (backends.owner_marks) names nothing now; best effort: a mark
            # left behind is stale and `virtdeck check --fix` drops it
            try:
                from ...backends import owner_marks
                owner_marks.remove(session, op.host, name)
            except (VirtdeckError, ValueError):
                pass
        if problems:
            raise HostError(f"{name}'s domain on {op.host} is gone but some parts are left: " + "; ".join(problems))
        return op.result("ok", f"{name} deleted from {op.host} ({len(removed)} volume(s), {len(rows.ports)} "
                         f"port(s), {len(rows.dhcp)} DHCP row(s), {len(rows.nats)} floating IP(s))")
    return _run_verb("vm.delete", name, body)
