"""`virtdeck template list | add | delete`: base images, pinned by sha256 (console/services/templates.py).

The CLI handlers; the subcommands and options are declared in the verb registry
(console/verbs/template.py).

Exit codes: 0 ok, 2 invalid input or template in use (nothing changed), 3 read-only, 4 host error
(a checksum mismatch on a host included: nothing kept).
"""

from __future__ import annotations

import sys
import time

from . import output  # --json / -o json|yaml and tables (the CLI's shared conventions)
from .cli_network import cli_session  # the same Session opener as the network verbs


class ProgressBar:
    """A one-line progress bar on stderr: ``hv1 name.qcow2 [#####     ]  45%  40/87 MiB``."""

    def __init__(self, stream=None, width: int = 24):
        self._stream, self.width = stream, width
        self._last = 0.0
        self._key = None

    def __call__(self, host: str, label: str, sent: int, total: int) -> None:
        now = time.monotonic()
        done = sent >= total
        if not done and (host, label) == self._key and now - self._last < 0.1:
            return
        self._last, self._key = now, (host, label)
        frac = sent / total if total else 1.0
        bar = "#" * int(frac * self.width)
        line = (f"\r{host} {label} [{bar:<{self.width}}] {frac:4.0%} "
                f"{sent / 1048576:.1f}/{total / 1048576:.1f} MiB")
        stream = self._stream or sys.stderr  # looked up late: tests swap sys.stderr
        stream.write(line + ("\n" if done else ""))
        stream.flush()


TEMPLATE_COLUMNS = (
    output.col("NAME", "name"),
    output.col("ARCH", "arch", fixed=True),
    output.col("OS", "os"),
    output.col("USER", "user"),
    output.col("SHA256", lambda r: r["sha256"][:12], fixed=True),
    output.col("HOSTS", "where"),
)


def _where(r) -> str:
    return ", ".join(
        f"{h.host}:{'?' if h.error else ('%d GiB' % round((h.size_bytes or 0) / 2**30)) if h.present else 'missing'}"
        + (f" ({len(h.users)} VMs)" if h.users else "") for h in r.hosts)


def cmd_list(args) -> int:
    """Templates and where they are: a table (console/output.py: fits 80 columns, --wide for
    all), or the list as JSON/YAML."""
    from .services.templates import list_templates
    with cli_session(args) as s:
        rows = list_templates(s, s.inventory)
    table = [{"name": r.template.name, "arch": r.template.arch, "os": r.template.os,
              "user": r.template.default_user, "sha256": r.template.sha256, "where": _where(r)} for r in rows]
    output.table(args, TEMPLATE_COLUMNS, table, empty="no templates (virtdeck template add NAME IMAGE)",
                 data=[r.to_dict() for r in rows])
    return 0


def cmd_add(args) -> int:
    from .services.templates import add_template
    with cli_session(args) as s:
        _, tpl = add_template(
            s, s.inventory, args.name, args.image, sha256=args.sha256, arch=args.arch,
            os_name=args.os, default_user=args.default_user, pool=args.pool, kernel=args.kernel,
            initrd=args.initrd, cmdline=args.cmdline,
            progress=None if args.json else ProgressBar())
    if args.json:
        output.print_data(args, {"name": tpl.name, "volume": tpl.volume, "sha256": tpl.sha256, "pool": tpl.pool,
                                 "arch": tpl.arch})
    else:
        print(f"template {tpl.name} added (sha256 {tpl.sha256}, verified on every host)")
    return 0


def cmd_delete(args) -> int:
    from .services.templates import delete_template
    with cli_session(args) as s:
        delete_template(s, s.inventory, args.name)
    if args.json:
        output.print_data(args, {"name": args.name, "deleted": True})
    else:
        print(f"template {args.name} deleted")
    return 0
