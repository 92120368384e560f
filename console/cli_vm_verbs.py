"""`virtdeck vm start|shutdown|poweroff|reboot|suspend|resume|delete|resize|edit-config|ip|console|move|list`.

Operator verbs on existing VMs; every one goes through :mod:`console.services.vm_ops` (the same
functions the TUI calls). ``register_verbs(vm_subparsers)`` is called by console/cli_vm.py.

Output: one line per VM, or JSON with ``--json`` (before or after the verb). Lifecycle verbs
take several names and print a JSON list (one entry per VM: the result, or
``{"vm", "outcome": "failed", "error"}``); the others print one object. Exit codes: 0 ok (also a
no-op), 2 invalid input, 3 read-only, 4 host/OVN error, 5 no such VM, 6 wrong state, 7 shutdown
timed out; with several VMs the first failure's code.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager

from .errors import ValidationError, VirtdeckError


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
    return bool(getattr(args, "json", False))


def _print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    print()


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
        _print_json(out)
    return code


def _tty() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _confirm(question: str) -> bool:
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


# ---------------------------------------------------------------------------------------------


def _lifecycle(fn_name: str, **fixed):
    def handler(args) -> int:
        from .services import vm_ops
        fn = getattr(vm_ops, fn_name)
        kwargs = dict(fixed)
        if getattr(args, "host", None):
            kwargs["host"] = args.host
        for key in ("timeout", "force", "hard", "missing_ok"):
            if getattr(args, key, None) is not None and hasattr(args, key):
                kwargs[key] = getattr(args, key)
        names = list(dict.fromkeys(args.names))
        with cli_session(args) as s:
            if fn_name == "delete" and not getattr(args, "yes", False):
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
            if fn_name == "shutdown" and len(names) == 1 and not args.force and _tty() and not _json(args):
                try:
                    res = vm_ops.shutdown(s, names[0], **kwargs)
                except vm_ops.ShutdownTimeout as exc:
                    _err(str(exc))
                    if not _confirm(f"Force {names[0]} off now?"):
                        return exc.exit_code
                    res = vm_ops.poweroff(s, names[0], host=exc.host)
                return _report(args, [res], names)
            results = vm_ops.bulk(getattr(vm_ops, fn_name), s, names, **kwargs)
        return _report(args, results, names)
    return handler


def cmd_resize(args) -> int:
    from .services import vm_ops
    with cli_session(args) as s:
        res = vm_ops.resize(s, args.name, vcpus=args.vcpus, memory_mib=args.memory,
                            host=args.host, live=not args.offline)
    if _json(args):
        _print_json(res.as_dict())
    else:
        print(res.message + (" (nothing to do)" if res.outcome == "noop" else ""))
    return 0


def cmd_ip(args) -> int:
    from .services import vm_ops
    with cli_session(args) as s:
        nics = vm_ops.ip(s, args.name, host=args.host)
    if _json(args):
        _print_json(nics)
        return 0
    for n in nics:
        ips = ", ".join(n["ips"]) or ("no port in OVN" if n.get("missing") else "no address yet")
        print(f"{n['mac'] or '?'}  {ips}" + (f"  ({n['switch']})" if n.get("switch") else ""))
    if not nics:
        print(f"{args.name} has no network interfaces")
    return 0


def cmd_list(args) -> int:
    from .services import vm_ops
    with cli_session(args) as s:
        rows, down = vm_ops.list_vms(s, host=args.host, tenant=args.tenant)
    try:
        if _json(args):
            _print_json({"vms": rows, "unreachable": down})
        else:
            print(f"{'NAME':<20} {'HOST':<8} {'STATE':<9} {'VCPU':>4} {'RAM MiB':>8}  {'TENANT':<10} IPS")
            for r in rows:
                print(f"{r['name']:<20} {r['host']:<8} {r['state']:<9} {r['vcpus']:>4} {r['memory_mib']:>8}  "
                      f"{(r['tenant'] or '-'):<10} {', '.join(r['ips'])}")
        sys.stdout.flush()
    except BrokenPipeError:  # `virtdeck vm list | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    for h, why in sorted(down.items()):
        _err(f"{h} not listed: {why}")
    return 4 if down and not rows else 0


def cmd_edit_config(args) -> int:
    from .services import vm_ops
    with cli_session(args) as s:
        if args.file:
            text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
        elif args.show:
            print(vm_ops.get_user_data(s, args.name, host=args.host), end="")
            return 0
        else:
            current = vm_ops.get_user_data(s, args.name, host=args.host)
            text = current
            while True:
                text = edit_text(text, suffix=".yaml")
                if text is None or text == current:
                    print("user-data unchanged; the seed was left as it is")
                    return 0
                try:
                    vm_ops.validate_user_data(text)
                    break
                except ValidationError as exc:
                    _err(str(exc))
                    if not (_tty() and _confirm("Edit it again?")):
                        return exc.exit_code
        res = vm_ops.edit_config(s, args.name, text, host=args.host)
    if _json(args):
        _print_json(res.as_dict())
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
    from .services import vm_ops
    with cli_session(args) as s:
        res = vm_ops.move(s, args.name, args.to, host=args.host)
    if _json(args):
        _print_json(res.as_dict())
    else:
        print(res.message + (" (nothing to do)" if res.outcome == "noop" else ""))
    return 0


def cmd_console(args) -> int:
    from .services import vm_ops
    with cli_session(args) as s:
        return vm_ops.console(s, args.name, host=args.host)


# ---------------------------------------------------------------------------------------------


def register_verbs(vm_sub) -> None:
    """Add the operator verbs to the ``vm`` group's subparsers (``vm_sub``)."""
    def add(name, help, func, many=True):
        p = vm_sub.add_parser(name, help=help)
        if many:
            p.add_argument("names", nargs="+", metavar="NAME", help="VM name(s)")
        else:
            p.add_argument("name", metavar="NAME", help="VM name")
        p.add_argument("--host", help="the hypervisor holding it (default: search every enabled one)")
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output")
        p.set_defaults(func=func)
        return p

    add("start", "boot stopped VMs (running ones: no-op)", _lifecycle("start"))
    p = add("shutdown", "ACPI power button, wait, then offer a force-off", _lifecycle("shutdown"))
    p.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="seconds to wait for the guest to power off (0: do not wait; default 60)")
    p.add_argument("--force", action="store_true", help="power off what is still running after the timeout")
    add("poweroff", "force VMs off at once (pull the plug)", _lifecycle("poweroff"))
    p = add("reboot", "reboot running VMs (ACPI; --hard: reset)", _lifecycle("reboot"))
    p.add_argument("--hard", action="store_true", help="reset without asking the guest")
    add("suspend", "pause running VMs", _lifecycle("suspend"))
    add("resume", "resume paused VMs", _lifecycle("resume"))
    p = add("delete", "delete VMs with their disk, seed, ports, DHCP rows and floating IPs", _lifecycle("delete"))
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument("--missing-ok", action="store_true", help="a VM that does not exist is a no-op")
    p = add("resize", "change vCPUs / RAM (live where the domain allows, else at next boot)", cmd_resize, many=False)
    p.add_argument("--vcpus", type=int, metavar="N")
    p.add_argument("--memory", type=int, metavar="MIB", help="RAM in MiB")
    p.add_argument("--offline", action="store_true", help="change the config only, not the running guest")
    p = add("edit-config", "edit the VM's cloud-init user-data; the seed is rebuilt with a new instance-id",
            cmd_edit_config, many=False)
    p.add_argument("--file", metavar="PATH", help="take the new user-data from PATH ('-': stdin) instead of $EDITOR")
    p.add_argument("--show", action="store_true", help="print the current user-data and exit")
    add("ip", "the VM's addresses, from OVN", cmd_ip, many=False)
    add("console", "attach to the VM's serial console (escape: Ctrl-])", cmd_console, many=False)
    p = add("move", "move a stopped VM to another hypervisor (disk copied through libvirt)", cmd_move, many=False)
    p.add_argument("--to", required=True, metavar="HOST", help="target hypervisor")
    p = vm_sub.add_parser("list", help="every VM on every hypervisor, with IPs from OVN")
    p.add_argument("--host", help="only this hypervisor")
    p.add_argument("--tenant", help="only this tenant's VMs")
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output")
    p.set_defaults(func=cmd_list)
