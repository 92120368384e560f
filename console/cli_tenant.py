"""`virtdeck tenant list | show` and `virtdeck audit`: read verbs (declared in console/verbs/tenant.py;
services console/services/tenants.py and audit_read.py).

Output through console/output.py: tables that fit 80 columns (``--wide``: all columns), or
JSON/YAML with ``--json`` / ``-o``. Exit codes (:class:`console.errors.ExitCode`): 0 ok, 2 bad
filter, 3 no such tenant, 5 a host or OVN did not answer (the usage shown misses what it holds).
"""

from __future__ import annotations

from . import output
from .cli_vm_verbs import cli_session
from .errors import ExitCode

TENANT_COLUMNS = (
    output.col("TENANT", "name"),
    output.col("VMS", lambda r: _of(r["vms"], r["max_vms"]), fixed=True, right=True),
    output.col("VCPUS", lambda r: _of(r["vcpus"], r["max_vcpus"]), fixed=True, right=True),
    output.col("RAM MiB", lambda r: _of(r["memory_mib"], r["max_ram_mib"]), fixed=True, right=True),
    output.col("NETWORKS", "networks", fixed=True, right=True),
    output.col("QUOTA", lambda r: "inventory" if r["in_inventory"] else "none", wide_only=True),
)


def _of(used, limit) -> str:
    from .services.tenants import of_quota
    return of_quota(used, limit)


def _partial(down: dict) -> int:
    for h, why in sorted(down.items()):
        output.warn(f"{h} not counted (partial result): {why}")
    return ExitCode.UNREACHABLE if down else ExitCode.OK


def cmd_list(args) -> int:
    """Every tenant's usage against quota (``used/max``; no max = unlimited)."""
    from .services.tenants import list_tenants
    with cli_session(args) as s:
        rows, down = list_tenants(s)
    output.table(args, TENANT_COLUMNS, rows, empty="no tenants", data={"tenants": rows, "unreachable": down})
    return _partial(down)


def cmd_show(args) -> int:
    """One tenant: usage against quota, its VMs and networks."""
    from .services.tenants import show_lines, show_tenant
    with cli_session(args) as s:
        res = show_tenant(s, args.name)
    output.emit(args, res, show_lines(res))
    return _partial(res["unreachable"])


AUDIT_COLUMNS = (
    output.col("TIME", lambda r: r["time"][:19].replace("T", " "), fixed=True),
    output.col("OPERATOR", "operator"),
    output.col("VERB", "verb"),
    output.col("TARGET", "target"),
    output.col("OUTCOME", "outcome"),
    output.col("DETAILS", lambda r: ", ".join(f"{k}={v}" for k, v in (r.get("details") or {}).items()) or None,
               wide_only=True),
)


def cmd_audit(args) -> int:
    """Audit records (filters: --operator, --verb, --target, --since, --until, --limit); reads
    the local file only, needs no host."""
    from .services.audit_read import read
    res = read(operator=args.operator, verb=args.verb, target=args.target, since=args.since,
               until=args.until, limit=args.limit)
    output.table(args, AUDIT_COLUMNS, res["records"], empty=f"no audit records match (in {res['path']})",
                 data=res["records"])
    if res["skipped"]:
        output.warn(f"{res['skipped']} unreadable line(s) in {res['path']} skipped")
    return ExitCode.OK
