"""`virtdeck vm …`: the VM verb group.

``cmd_create(args) -> exit code``; the subcommand and its options are declared once in the verb
registry (console/verbs/vm.py). The operator verbs on existing VMs (start, shutdown, delete,
resize, …) have their handlers in console/cli_vm_verbs.py.

`vm create` (console/services/provision.py): every wizard field as an option. The password never
goes on the command line: ``--password-stdin`` reads it (hashed at once), ``--password-hash``
takes a ``$6$`` hash, and on a terminal it is asked for. Progress goes to stderr, one line per step;
``--json`` / ``-o json|yaml`` prints the result (or the failure) on stdout. ``--dry-run`` shows
the placement table (80 columns, reasons wrapped) and the seed (password as its hash) and creates
nothing. Exit codes (:class:`console.errors.ExitCode`): 0 created, 1 a step failed (everything
undone), 2 invalid input or no host fits (nothing created), 5 host error before any step,
7 read-only.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

from . import output
from .errors import ExitCode, ValidationError


def _json(args) -> bool:
    return output.fmt(args) != "table"


def _read_keys(values: list[str]) -> tuple[str, ...]:
    """``--ssh-key`` values: a public key line, or a file holding one key per line."""
    from . import cloudinit
    keys: list[str] = []
    for v in values or []:
        if not isinstance(v, str):  # argparse's [] for a value of exactly '--'
            raise ValidationError("ssh-keys", "give a public key line or a .pub file after --ssh-key")
        p = Path(v).expanduser()
        if not v.startswith(("ssh-", "ecdsa-", "sk-")) and p.is_file():
            keys += cloudinit.parse_ssh_keys(p.read_text(), required=False)
        else:
            keys.append(cloudinit.validate_ssh_key(v))
    if not keys:
        raise ValidationError("ssh-keys", "give at least one --ssh-key (a .pub file or a key line)")
    return tuple(keys)


def _password_hash(args) -> str:
    from . import cloudinit
    if args.password_hash:
        return cloudinit.validate_password_hash(args.password_hash)
    if args.password_stdin:
        clear = sys.stdin.readline().rstrip("\n")
        return cloudinit.hash_password(clear)
    if sys.stdin.isatty():
        clear = getpass.getpass("password for the VM's default user: ")
        again = getpass.getpass("again: ")
        if clear != again:
            raise ValidationError("password", "the two entries differ")
        return cloudinit.hash_password(clear)
    raise ValidationError("password", "give --password-stdin or --password-hash (never the clear text as an option)")


def build_request(args):
    """The :class:`VmRequest` for parsed ``vm create`` args (keys read, password hashed)."""
    from .services.provision import VmRequest
    from .services.provision_checks import check_disk, check_networks, check_ram, check_vcpus
    user_data = ""
    if args.user_data:
        from . import cloudinit
        user_data = cloudinit.read_user_data(args.user_data)
    # argparse turns a value of exactly '--' into [] (not a string): such a value names nothing
    networks = check_networks([n for v in args.network if isinstance(v, str) for n in v.split(",")])
    ips: tuple = ()
    if args.ip:
        if len(args.ip) != len(networks):
            raise ValidationError("ip", "give one --ip per --network (use 'auto' or 'dynamic' to skip one)")
        ips = tuple(None if ip == "auto" else ip for ip in args.ip)
    return VmRequest(
        name=args.name, tenant=args.tenant, template=args.template, vcpus=check_vcpus(args.vcpus),
        ram_mib=check_ram(args.ram), disk_gib=check_disk(args.disk), networks=networks,
        ssh_keys=_read_keys(args.ssh_key), password_hash=_password_hash(args), user=args.user,
        user_data=user_data, host=args.host, weigher=args.weigher, anti_affinity=args.anti_affinity,
        max_vcpus=getattr(args, "max_vcpus", None), max_ram_mib=getattr(args, "max_ram", None),
        ips=ips, start=not args.no_start, allow_emulation=bool(getattr(args, "allow_emulation", False)))


PLACEMENT_COLUMNS = (
    output.col("HOST", "host"),
    output.col("VERDICT", "verdict", fixed=True),
    output.col("vCPU", "vcpus", fixed=True, right=True),
    output.col("RAM MiB", "ram_mib", fixed=True, right=True),
    output.col("WHY", lambda r: "; ".join(r["reasons"]) or None, wrap=True),
)


def _print_table(rows: list[dict], out=None, args=None) -> None:
    """The placement verdicts (``Placement.as_rows()``) as a table that fits the terminal (80
    columns off a terminal; the reasons wrap), indented by two, on ``out`` (default stderr)."""
    out = out or sys.stderr
    width = output.table_width(args) if args else output.PIPE_WIDTH
    for line in output.render_table(PLACEMENT_COLUMNS, rows, None if width is None else width - 2):
        print(f"  {line}" if line else line, file=out)


def cmd_create(args) -> int:
    """`virtdeck vm create NAME …`"""
    from .cli_vm_verbs import cli_session
    from .services import provision as pv
    as_json = _json(args)
    req = build_request(args)

    def progress(step, status, detail):
        if status == "start":
            return
        mark = {"ok": "ok", "failed": "FAILED", "undo": "undo", "undone": "undone",
                "undo-failed": "UNDO FAILED"}.get(status, status)
        print(f"[{mark:>6}] {step:<9} {detail}", file=sys.stderr, flush=True)

    with cli_session(args) as session:
        inv = session.inventory
        if args.dry_run:
            preview = pv.plan(session, inv, req)
            placement, seed = preview.placement, preview.seed
            if as_json:
                lim = preview.limits
                output.print_data(args, {
                    "placement": placement.as_rows(), "host": placement.host,
                    "max_vcpus": lim[0] if lim else None, "max_ram_mib": lim[1] if lim else None,
                    "seed": {"meta-data": seed.meta_data, "user-data": seed.user_data,
                             "network-config": seed.network_config}})
            else:
                print(f"placement ({placement.weigher}): {placement.host or 'no host fits'}")
                _print_table(placement.as_rows(), sys.stdout, args)
                if preview.limits:
                    print(f"live growth up to {preview.limits[0]} vCPUs, {preview.limits[1]} MiB "
                          f"({'given' if req.max_vcpus else 'automatic'} / "
                          f"{'given' if req.max_ram_mib else 'automatic'})")
                print(seed.preview())
            return ExitCode.OK if placement.host else ExitCode.USAGE
        try:
            result = pv.create_vm(session, inv, req, progress=progress)
        except pv.CreateError as exc:
            if as_json:
                output.print_data(args, {"name": req.name, "outcome": "failed", "step": exc.step,
                                         "error": exc.reason, "left_behind": exc.left})
                return exc.exit_code
            raise
    if as_json:
        output.print_data(args, result.to_dict())
    else:
        ips = ", ".join(f"{p.network}={p.ip or 'dynamic'}" for p in result.ports)
        print(f"vm {result.tenant}/{result.name} created on {result.host} "
              f"({'running' if result.running else 'defined, not started'}; {ips}; "
              f"submit→running {result.submit_to_running or 0:.1f} s)")
        _print_table(result.placement.as_rows(), sys.stdout, args)
    return 0
