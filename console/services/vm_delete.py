"""``vm delete``: a VM and everything it owns (domain, own volumes, OVN rows, console log)."""

from __future__ import annotations

from typing import Any

import libvirt

from ...backends.ovn import vm_ports
from ..errors import HostError, VirtdeckError
from .vm_lookup import OpResult, VmNotFound, _find, _lv_msg, _nb, _Op, _run_verb, domain_facts

# ---------------------------------------------------------------------------------------------
# Delete


def _template_volumes(session) -> set[tuple[str, str]]:
    return {(t.pool, t.volume) for t in session.inventory.templates}


def _own_volumes(session, conn, disks) -> tuple[list[tuple[Any, str]], list[str]]:
    """Split a domain's disks into ``[(volume, pool name)]`` it owns (its overlay, its seed) and
    the paths it only uses: not a pool volume, or a template volume shared by every VM."""
    templates = _template_volumes(session)
    own, shared = [], []
    for d in disks:
        if not d.source:
            continue
        vol = _volume_for(conn, d.source)
        pool = vol.storagePoolLookupByVolume().name() if vol is not None else None
        if vol is None or (pool, vol.name()) in templates:
            shared.append(d.source)
        else:
            own.append((vol, pool))
    return own, shared


def _volume_for(conn, path: str):
    """The storage volume at ``path`` (or ``pool:POOL/VOL``), or None when it is not a pool volume."""
    try:
        if path.startswith("pool:"):
            pool, vol = path[5:].split("/", 1)
            return conn.storagePoolLookupByName(pool).storageVolLookupByName(vol)
        return conn.storageVolLookupByPath(path)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in (libvirt.VIR_ERR_NO_STORAGE_VOL, libvirt.VIR_ERR_NO_STORAGE_POOL):
            return None
        raise


def delete(session, name: str, host: str | None = None, missing_ok: bool = False) -> OpResult:
    """Delete a VM and everything it owns: the domain (forced off first if it runs; managed save,
    snapshot metadata and NVRAM go with it), its disk volumes (the qcow2 overlay and the seed ISO;
    a template's base volume is never deleted), its LSPs, its DHCP_Options rows and its floating
    IPs (NAT rows) — see :func:`ovn_rows_of`.

    Order: NB is reached and the rows listed BEFORE anything is removed (an unreachable NB fails
    the verb with nothing touched); then domain, volumes, OVN rows in one transaction. A failure
    after the domain is gone does not stop the other removals; the error then lists what is left.
    No domain but OVN rows tagged with the VM → those are removed (outcome ok). Nothing at all →
    VmNotFound, or noop with ``missing_ok``.

    details: ``volumes`` removed (names), ``kept`` (paths left: not pool volumes or templates),
    ``ports``, ``dhcp``, ``nats`` removed.
    """
    def body(op: _Op) -> OpResult:
        try:
            dom = _find(op, session, host)
        except VmNotFound:
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
        facts = domain_facts(dom, inactive=dom.isPersistent())
        nb = _nb(session)  # fail before touching anything if NB is unreachable
        rows = vm_ports.rows_of(nb, name, facts.interfaceids)
        owned, kept = _own_volumes(session, conn, facts.disks)
        volumes = [vol for vol, _ in owned]
        try:
            if dom.isActive():
                dom.destroy()
            if dom.isPersistent():
                flags = libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                try:
                    dom.undefineFlags(flags | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                                      | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
                        raise
                    dom.undefineFlags(flags)
        except libvirt.libvirtError as exc:
            # someone else (another console, virsh) removed it meanwhile: finish the cleanup
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
        problems: list[str] = []
        removed: list[str] = []
        for vol in volumes:
            vname = vol.name()
            try:
                vol.delete(0)
                removed.append(vname)
            except libvirt.libvirtError as exc:
                problems.append(f"volume {vname} on {op.host}: {_lv_msg(exc)}")
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
        if problems:
            raise HostError(f"{name}'s domain on {op.host} is gone but some parts are left: " + "; ".join(problems))
        return op.result("ok", f"{name} deleted from {op.host} ({len(removed)} volume(s), {len(rows.ports)} "
                         f"port(s), {len(rows.dhcp)} DHCP row(s), {len(rows.nats)} floating IP(s))")
    return _run_verb("vm.delete", name, body)
