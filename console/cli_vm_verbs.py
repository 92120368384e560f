"""`virtdeck vm start|shutdown|poweroff|reboot|suspend|resume|delete|resize|edit-config|ip|console|move|list|show`.

The CLI handlers of the operator verbs on existing VMs; every one goes through the service
function its registry entry names (console/verbs/vm.py declares the subcommands, options and
help; the TUI calls the same functions). :func:`cmd_lifecycle` serves every lifecycle verb and
:func:`cmd_read` any read verb whose service returns a dict.

Output: one line per VM, or JSON/YAML with ``--json`` / ``-o json|yaml`` (in any position;
console/output.py). Lifecycle verbs take several names and print a list (one entry per VM: the
result, or ``{"vm", "outcome": "failed", "error"}``); the others print one object. Exit codes:
:class:`console.errors.ExitCode` (0 ok, also a no-op; 2 invalid input; 3 no such VM; 4 wrong
state; 5 host/OVN error, or ``vm list`` missing a host; 6 shutdown timed out; 7 read-only); with
several VMs the first failure's code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager

from . import output
from .errors import ExitCode, ValidationError, VirtdeckError
from .verbs import takes_verb


@contextmanager
def cli_session(args):
    """A Session on the inventory named by --config (or the default one); honours --readonly."""
    from ..backends.session import Session
    from ..config.inventory import load
    from ..config.paths import resolve_inventory_path
    from .services.guard import set_readonly

    set_readonly(bool(getattr(args, "readonly", False)))
    inv = load(resolve_inventory_path(getattr(args, "config", None)))
    session = Session(inv, connect_timeout=float(os.environ.get("VIRTDECK_CONNECT_TIMEOUT", "5")))
    try:
        yield session
    finally:
        session.close()


def _json(args) -> bool:
    return output.fmt(args) != "table"


def _print_json(obj, args=None) -> None:
    """``obj`` as JSON (or YAML under ``-o yaml``)."""
    output.print_data(args, obj)


def _err(msg: str) -> None:
    print(f"virtdeck: {msg}", file=sys.stderr)


def _report(args, results, names) -> int:
    """Print bulk results; return the exit code (0, or the first failure's)."""
    code = 0
    out = []
    for name, res in zip(names, results):
        if isinstance(res, VirtdeckError):
            code = code or res.exit_code
            out.append({"vm": name, "outcome": "failed", "error": str(res)})
            _err(str(res))
        else:
            out.append(res.as_dict())
            if not _json(args):
                note = " (nothing to do)" if res.outcome == "noop" else ""
                print(res.message + note)
    if _json(args):
        _print_json(out, args)
    return code


def _tty() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _confirm(question: str) -> bool:
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


# ---------------------------------------------------------------------------------------------


@takes_verb
def cmd_lifecycle(args, verb) -> int:
    """start / shutdown / poweroff / reboot / suspend / resume / delete on NAME(s): the verb's
    service per VM (``services.verb.bulk``); ``delete`` asks first (or takes ``--yes``), a lone
    ``shutdown`` on a terminal offers a force-off when the guest does not stop in time."""
    from .services import vm_power
    from .services.verb import bulk
    fn = verb.service_fn()
    kwargs = {}
    if getattr(args, "host", None):
        kwargs["host"] = args.host
    for key in ("timeout", "force", "hard", "missing_ok"):
        if getattr(args, key, None) is not None and hasattr(args, key):
            kwargs[key] = getattr(args, key)
    names = list(dict.fromkeys(args.names))
    with cli_session(args) as s:
        if verb.leaf == "delete" and not getattr(args, "yes", False):
            from .services import guard
            if not guard.is_readonly():
                if not _tty():
                    raise ValidationError("--yes", "delete removes the VMs, their disks and ports for good; "
                                          "pass --yes to confirm when not on a terminal")
                print("This deletes, with their disks, seeds, ports and floating IPs:")
                for n in names:
                    print(f"  {n}")
                if not _confirm(f"Delete {len(names)} VM(s)?"):
                    print("nothing deleted")
                    return 1
        if verb.leaf == "shutdown" and len(names) == 1 and not args.force and _tty() and not _json(args):
            try:
                res = fn(s, names[0], **kwargs)
            except vm_power.ShutdownTimeout as exc:
                _err(str(exc))
                if not _confirm(f"Force {names[0]} off now?"):
                    return exc.exit_code
                res = vm_power.poweroff(s, names[0], host=exc.host)
            return _report(args, [res], names)
        results = bulk(fn, s, names, **kwargs)
    return _report(args, results, names)


@takes_verb
def cmd_read(args, verb) -> int:
    """A read verb on one VM: its service ``(session, NAME, host=…) -> dict`` printed as JSON
    (``--json``) or as the text lines of its ``render`` function. Exit 0, or the error's code."""
    with cli_session(args) as s:
        res = verb.service_fn()(s, args.name, host=args.host)
    render = verb.render_fn()
    if _json(args) or render is None:
        _print_json(res, args)
    else:
        for line in render(res):
            print(line)
    return 0


def cmd_resize(args) -> int:
    from .services import vm_resize
    with cli_session(args) as s:
        res = vm_resize.resize(s, args.name, vcpus=args.vcpus, memory_mib=args.memory,
                            host=args.host, live=not args.offline)
    if _json(args):
        _print_json(res.as_dict(), args)
    else:
        print(res.message + (" (nothing to do)" if res.outcome == "noop" else ""))
    return 0


def cmd_ip(args) -> int:
    from .services import vm_lookup
    with cli_session(args) as s:
        nics = vm_lookup.ip(s, args.name, host=args.host)
    if _json(args):
        _print_json(nics, args)
        return 0
    for n in nics:
        ips = ", ".join(n["ips"]) or ("no port in OVN" if n.get("missing") else "no address yet")
        print(f"{n['mac'] or '?'}  {ips}" + (f"  ({n['switch']})" if n.get("switch") else ""))
    if not nics:
        print(f"{args.name} has no network interfaces")
    return 0


VM_COLUMNS = (
    output.col("NAME", "name"),
    output.col("HOST", "host"),
    output.col("STATE", "state", fixed=True),
    output.col("VCPU", "vcpus", fixed=True, right=True),
    output.col("RAM MiB", "memory_mib", fixed=True, right=True),
    output.col("TENANT", "tenant"),
    output.col("TEMPLATE", "template", wide_only=True),
    output.col("NETWORKS", "networks", wide_only=True),
    output.col("IPS", "ips"),
)


def cmd_list(args) -> int:
    """Every VM (``--host``, ``-t/--tenant`` narrow it): a table, or ``{"vms", "unreachable"}``
    as JSON/YAML. A host (or OVN) that did not answer: its rows are missing, a warning per host on
    stderr, exit 5 (partial result) — also when nothing could be listed."""
    from .completion import remember
    from .services import vm_lookup
    with cli_session(args) as s:
        rows, down = vm_lookup.list_vms(s, host=args.host, tenant=args.tenant)
    if not down and not args.host and not args.tenant:
        remember("vms", [r["name"] for r in rows])
    output.table(args, VM_COLUMNS, rows, empty="no VMs", data={"vms": rows, "unreachable": down})
    for h, why in sorted(down.items()):
        output.warn(f"{h} not listed (partial result): {why}")
    return ExitCode.UNREACHABLE if down else ExitCode.OK


def cmd_edit_config(args) -> int:
    from .services import vm_seed
    with cli_session(args) as s:
        if args.file:
            text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
        elif args.show:
            print(vm_seed.get_user_data(s, args.name, host=args.host), end="")
            return 0
        else:
            current = vm_seed.get_user_data(s, args.name, host=args.host)
            text = current
            while True:
                text = edit_text(text, suffix=".yaml")
                if text is None or text == current:
                    print("user-data unchanged; the seed was left as it is")
                    return 0
                try:
                    vm_seed.validate_user_data(text)
                    break
                except ValidationError as exc:
                    _err(str(exc))
                    if not (_tty() and _confirm("Edit it again?")):
                        return exc.exit_code
        res = vm_seed.edit_config(s, args.name, text, host=args.host)
    if _json(args):
        _print_json(res.as_dict(), args)
    else:
        print(res.message)
    return 0


def edit_text(text: str, suffix: str = ".txt") -> str | None:
    """Open ``text`` in ``$VISUAL``/``$EDITOR`` (default ``vi``) in a private temporary file and
    return what was saved (None when the editor failed). The file is removed afterwards."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    fd, path = tempfile.mkstemp(prefix="virtdeck-", suffix=suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        import shlex
        rc = subprocess.run([*shlex.split(editor), path]).returncode
        if rc != 0:
            return None
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    finally:
        os.unlink(path)


def cmd_move(args) -> int:
    from .services import vm_move
    with cli_session(args) as s:
        res = vm_move.move(s, args.name, args.to, host=args.host)
    if _json(args):
        _print_json(res.as_dict(), args)
    else:
        print(res.message + (" (nothing to do)" if res.outcome == "noop" else ""))
    return 0


def cmd_console(args) -> int:
    from .services import vm_console
    with cli_session(args) as s:
        return vm_console.console(s, args.name, host=args.host)
