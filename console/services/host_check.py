"""``virtdeck host check [NAME]``: the preflight of one host or of every hypervisor.

The facts and their fix commands come from :mod:`backends.preflight` (one SSH command per host
for the OS/OVS/OVN side, libvirt through the host's forwarded socket). Hosts are checked in
parallel. The check itself changes nothing and is not audited; ``create_pool`` (the fix of a
missing pool) is a mutating verb of its own, ``host.create-pool``, with its audit record.
"""

from __future__ import annotations

import concurrent.futures

from ...backends import preflight
from ...backends.preflight import FAIL, OK, WARN, CheckLine
from ..errors import HostError, ValidationError
from . import verb as verb_frame

ORDER = {OK: 0, WARN: 1, FAIL: 2}


def pools_of(inventory, pool: str | None = None) -> list[str]:
    """The storage pools a hypervisor needs: ``pool`` if given, else every pool the inventory's
    templates live in, else ``["virtdeck"]`` (the default of ``template add``)."""
    if pool:
        return [pool]
    return sorted({t.pool for t in inventory.templates}) or ["virtdeck"]


def worst(lines) -> str:
    """ok / warn / fail: the worst status of ``lines`` (CheckLine or their dicts)."""
    statuses = [line.status if isinstance(line, CheckLine) else line["status"] for line in lines]
    return max(statuses, key=ORDER.__getitem__, default=OK)


def _create_pool(session, host: str, pool: str, path: str) -> CheckLine:
    """The audited fix: define/build/start/autostart ``pool`` at ``path``; its new line."""
    def body(run: verb_frame.VerbRun) -> CheckLine:
        run.host = host
        run.note(pool=pool, path=path)
        conn = session.libvirt(host)
        preflight.create_dir_pool(conn, host, pool, path)
        return preflight.pool_line(conn, host, pool)
    return verb_frame.run("host.create-pool", f"host {host}", body)


def check_one(session, name: str, pools: list[str], create_pool: str | None = None) -> list[CheckLine]:
    """Every fact of host ``name`` (see :mod:`backends.preflight`), in a fixed order: ssh, libvirt,
    kvm, guest arches, pools, br-int, ovn-controller, sb chassis, bridge mappings, tools (a
    non-hypervisor host: ssh and tools only; a host with ``ovn = false``: one ok "ovn" line
    instead of the four OVN facts). SSH failing ends the list there.

    ``create_pool`` (a directory path on the host): create the ONE missing pool of ``pools``
    there (audited as ``host.create-pool``); its line is then the new pool's. Raises
    ValidationError when several pools are missing (say which with ``--pool``), HostError when
    the creation fails (nothing of it is left). A disabled host gets a warn line saying so.
    """
    hc = session.inventory.host(name)
    try:
        link = session.link(name)
    except HostError as exc:
        return [preflight.ssh_fail_line(name, hc.address, exc)]
    lines = [preflight.ssh_line(link, name)]
    try:
        values = preflight.probe(session, name)
    except HostError as exc:
        values = {}
        lines.append(CheckLine("probe", FAIL, str(exc), f"ssh {hc.address} sh -c true  (a shell must run)"))
    if hc.hypervisor:
        lines += _libvirt_part(session, name, hc, values, pools, create_pool)
        if values and hc.ovn:
            lines += preflight.ovn_lines(name, _sb_fallback(session, values))
        elif values:  # inventory `ovn = false`: not a broken host, one without OVN by design
            lines.append(CheckLine("ovn", OK, "none on this host (inventory ovn = false): libvirt "
                                   "only, no br-int/ovn-controller/chassis; placement skips it"))
    if values:
        lines.append(preflight.tools_line(name, values))
    if not hc.enabled:
        why = f": {hc.disabled_reason}" if hc.disabled_reason else ""
        lines.append(CheckLine("placement", WARN, f"disabled in the inventory{why}; placement skips it",
                               f"virtdeck host enable {name}"))
    return lines


def _sb_fallback(session, values: dict[str, str]) -> dict[str, str]:
    """A host whose ovn-controller SSL files the operator may not read (probe ``sb.rc``
    "unreadable FILE"; "unreadable -": none known, e.g. ovn-controller stopped): its chassis is
    asked through the console's own SB connection instead, when the inventory's
    ``sb_connection`` names the same members as the host's ovn-remote."""
    if not values.get("sb.rc", "").startswith("unreadable "):
        return values
    own = session.inventory.ovn.sb_connection or ""
    members = lambda text: sorted(m.strip() for m in text.split(",") if m.strip())  # noqa: E731
    if not own or members(own) != members(values.get("ovs.ovn-remote", "")):
        return values
    from ...backends.ovn import southbound
    try:
        data = southbound.snapshot(session)
    except HostError:
        return values
    return {**values, **preflight.sb_values(data, values.get("ovs.system-id", ""))}


def _libvirt_part(session, name, hc, values, pools, create_pool) -> list[CheckLine]:
    try:
        conn = session.libvirt(name)
    except HostError as exc:
        user = values.get("user", "the operator")
        denied = "ermission denied" in str(exc) or "authentication" in str(exc).lower()
        fix = (f"on {name}: sudo usermod -aG libvirt {user}  (then reconnect)" if denied
               else f"on {name}: sudo systemctl start libvirtd  (socket {hc.libvirt_socket})")
        return [CheckLine("libvirt", FAIL, str(exc), fix)]
    lines = preflight.libvirt_lines(conn, name, hc.domain_type)
    pool_lines = [preflight.pool_line(conn, name, p) for p in pools]
    if create_pool:
        missing = [p for p, line in zip(pools, pool_lines) if line.detail.startswith("no storage pool")]
        if len(missing) > 1:
            raise ValidationError("--create-pool", f"{name} lacks pools {', '.join(missing)}; "
                                                   f"name the one to create with --pool")
        if missing:
            i = pools.index(missing[0])
            pool_lines[i] = _create_pool(session, name, missing[0], create_pool)
    return lines + pool_lines


def check(session, name: str | None = None, *, pool: str | None = None,
          create_pool: str | None = None) -> dict:
    """Preflight ``name`` (default: every hypervisor of the inventory, in parallel).

    Returns ``{"ok": bool (no fail line), "hosts": [{"host", "status" (worst), "lines":
    [{"fact", "status", "detail", "fix"}, …]}, …]}``. ``pool``: check this pool instead of
    :func:`pools_of`; ``create_pool``: see :func:`check_one` (needs ``name``).
    Raises ConfigError for an unknown host, ValidationError for ``create_pool`` without a host.
    """
    inv = session.inventory
    if name is not None:
        inv.host(name)  # ConfigError naming the known hosts
    elif create_pool:
        raise ValidationError("--create-pool", "name the host to create the pool on")
    names = [name] if name else [h.name for h in inv.hypervisors]
    pools = pools_of(inv, pool)
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(4, len(names)))) as ex:
        results = list(ex.map(lambda n: check_one(session, n, pools, create_pool), names))
    hosts = [{"host": n, "status": worst(ls), "lines": [line.as_dict() for line in ls]}
             for n, ls in zip(names, results)]
    return {"ok": all(h["status"] != FAIL for h in hosts), "hosts": hosts}


def check_text(result: dict) -> list[str]:
    """:func:`check`'s result as text: per host its name, then one line per fact
    (``  ok    ssh              root@… ``) and, under a warn/fail, ``fix: COMMAND``."""
    out = []
    for h in result["hosts"]:
        out.append(f"{h['host']}: {h['status']}")
        for line in h["lines"]:
            out.append(f"  {line['status']:<5} {line['fact']:<16} {line['detail']}")
            if line["fix"] and line["status"] != OK:
                out.append(f"  {'':<5} {'':<16} fix: {line['fix']}")
    return out
