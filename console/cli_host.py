"""`virtdeck host check | add | disable | enable | drain | remove`: the CLI handlers of the host
verbs (declared in console/verbs/host.py; services console/services/host_*.py).

Output: text lines, or JSON with ``--json``. Exit codes: 0 ok (also a no-op), 2 invalid input,
3 read-only, 4 a host error — for ``check`` and ``add``: the check has a fail line (the lines are
printed all the same) — 1 VMs still on a host that ``remove`` was asked to remove.
"""

from __future__ import annotations

import sys

from .cli_network import emit as _print  # --json: the object, else the text lines
from .cli_vm_verbs import cli_session


def cmd_check(args) -> int:
    """Preflight one host (or every hypervisor); exit 4 when a line fails."""
    from .services import host_check
    with cli_session(args) as s:
        res = host_check.check(s, args.name, pool=args.pool, create_pool=args.create_pool)
    _print(args, res, host_check.check_text(res))
    return 0 if res["ok"] else 4


def cmd_add(args) -> int:
    """Check, then write the host into the inventory (or print the check and exit 4)."""
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
    """List the VMs on the host; with --move-to move the stopped ones (exit 4 if a move failed)."""
    from .services import host_drain
    with cli_session(args) as s:
        res = host_drain.drain(s, args.name, move_to=args.move_to)
    _print(args, res, host_drain.drain_text(res))
    return 4 if res["failed"] else 0
