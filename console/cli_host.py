"""`virtdeck host check | add | disable | enable | drain | remove | list | show`: the CLI handlers of the host
verbs (declared in console/verbs/host.py; services console/services/host_*.py).

Output: text lines, or JSON/YAML with ``--json`` / ``-o json|yaml`` (console/output.py). Exit
codes (:class:`console.errors.ExitCode`): 0 ok (also a no-op), 1 ``check``/``add``: the check has
a fail line (the lines are printed all the same) or a ``drain`` move failed, 2 invalid input,
3 no such host, 4 VMs still on a host that ``remove`` was asked to remove, 5 host unreachable,
7 read-only.
"""

from __future__ import annotations

import sys

from . import output
from .cli_network import emit as _print  # --json: the object, else the text lines
from .cli_vm_verbs import cli_session
from .errors import ExitCode


def cmd_check(args) -> int:
    """Preflight one host (or every hypervisor); exit 1 (FAILED) when a line fails."""
    from .services import host_check
    with cli_session(args) as s:
        res = host_check.check(s, args.name, pool=args.pool, create_pool=args.create_pool)
    _print(args, res, host_check.check_text(res))
    return ExitCode.OK if res["ok"] else ExitCode.FAILED


def cmd_add(args) -> int:
    """Check, then write the host into the inventory (or print the check and exit 1)."""
    from .services import host_admin, host_check
    with cli_session(args) as s:
        try:
            res = host_admin.add(s, args.name, args.address, user=args.user, port=args.port,
                                 pool=args.pool, create_pool=args.create_pool, force=args.force,
                                 domain_type=args.domain_type)
        except host_admin.HostCheckFailed as exc:
            _print(args, {"error": str(exc), "check": exc.result}, host_check.check_text(exc.result))
            print(f"virtdeck: {exc}", file=sys.stderr)
            return exc.exit_code
    lines = host_check.check_text(res["check"])
    lines.append(f"{'added (--force, the check failed)' if res['forced'] else 'added'} {res['host']} "
                 f"to {res['written']}" + (f" (previous file: {res['backup']})" if res["backup"] else ""))
    _print(args, res, lines)
    return 0


def _admin(args, fn, *extra) -> int:
    with cli_session(args) as s:
        res = fn(s, args.name, *extra)
    if res.get("outcome") == "noop":
        line = f"{res['host']} is already {'enabled' if res['enabled'] else 'disabled'} (nothing to do)"
    elif "enabled" in res:
        line = (f"{res['host']} enabled: placement may pick it" if res["enabled"] else
                f"{res['host']} disabled ({res['reason']}): placement skips it")
    else:
        line = f"{res['host']} removed from {res['written']}"
    _print(args, res, [line])
    return 0


def cmd_disable(args) -> int:
    from .services import host_admin
    return _admin(args, host_admin.disable, args.reason)


def cmd_enable(args) -> int:
    from .services import host_admin
    return _admin(args, host_admin.enable)


def cmd_remove(args) -> int:
    from .services import host_admin
    return _admin(args, host_admin.remove, args.force)


def cmd_drain(args) -> int:
    """List the VMs on the host; with --move-to move the stopped ones (exit 1 if a move failed)."""
    from .services import host_drain
    with cli_session(args) as s:
        res = host_drain.drain(s, args.name, move_to=args.move_to)
    _print(args, res, host_drain.drain_text(res))
    return ExitCode.FAILED if res["failed"] else ExitCode.OK


HOST_COLUMNS = (
    output.col("NAME", "name"),
    output.col("STATE", "state", fixed=True),
    output.col("VMS", "vms", fixed=True, right=True),
    output.col("VCPUS", lambda r: None if r["vcpus"] is None else f"{r['vcpus']}/{r['vcpus_max']}",
               fixed=True, right=True),
    output.col("RAM MiB", lambda r: None if r["memory_mib"] is None else f"{r['memory_mib']}/{r['memory_max_mib']}",
               fixed=True, right=True),
    output.col("FREE MiB", "memory_free_mib", fixed=True, right=True),
    output.col("ADDRESS", "address"),
    output.col("TYPE", "domain_type", wide_only=True),
    output.col("REASON", "reason", wide_only=True),
)


def cmd_list(args) -> int:
    """Every host: state and allocation against capacity; exit 5 when an enabled hypervisor
    did not answer (its row says unreachable; a warning names it)."""
    from .services.hosts_read import list_hosts
    with cli_session(args) as s:
        rows, down = list_hosts(s)
    output.table(args, HOST_COLUMNS, rows, empty="no hosts in the inventory (virtdeck host add)",
                 data={"hosts": rows, "unreachable": down})
    for h, why in sorted(down.items()):
        output.warn(f"{h} not read (partial result): {why}")
    return ExitCode.UNREACHABLE if down else ExitCode.OK


def cmd_show(args) -> int:
    """One host in detail (capacity, allocation, VMs, physnets)."""
    from .services.hosts_read import show_host, show_lines
    with cli_session(args) as s:
        res = show_host(s, args.name)
    _print(args, res, show_lines(res))
    return ExitCode.OK
