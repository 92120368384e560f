"""`virtdeck template list | add | delete`: base images, pinned by sha256 (console/services/templates.py).

The CLI handlers; the subcommands and options are declared in the verb registry
(console/verbs/template.py).

Exit codes (console/errors.py ExitCode): 0 ok, 2 invalid input or template in use (nothing
changed), 5 a host failed or did not answer (a checksum mismatch or failed download on a host
included: nothing kept), 7 read-only, 130 interrupted (a URL download's partial files stay on
the hosts for the next run to resume).
"""

from __future__ import annotations

import sys
import threading
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


class HostsProgress:
    """Progress of parallel per-host downloads on stderr: at a terminal one rich bar per host,
    otherwise a line per host at each quarter (``hv2 img.qcow2  50%  64.0/128.0 MiB``)."""

    def __init__(self, stream=None):
        self._stream = stream or sys.stderr
        self._lock = threading.Lock()
        self._seen: dict[str, int] = {}
        self._rich = None
        self._tasks: dict[str, int] = {}
        if self._stream.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
            self._rich = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                  console=Console(file=self._stream), transient=False)
            self._rich.start()

    def __call__(self, host: str, label: str, sent: int, total: int) -> None:
        with self._lock:
            if self._rich is not None:
                if host not in self._tasks:
                    self._tasks[host] = self._rich.add_task(f"{host} {label}", total=total or None)
                self._rich.update(self._tasks[host], completed=sent, total=total or None)
                return
            step = 4 if not total else min(4, sent * 4 // total)
            if self._seen.get(host, -1) >= step:
                return
            self._seen[host] = step
            pct = f"{sent / total:4.0%}" if total else "   ?"
            self._stream.write(f"{host} {label} {pct} {sent / 1048576:.1f}/{total / 1048576:.1f} MiB\n")
            self._stream.flush()

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()


def _ask(args, field: str, prompt: str, default: str) -> str:
    """``args.<field>`` if given; else asked at a terminal (Enter keeps ``default``), else ``default``."""
    value = getattr(args, field, None)
    if value is not None:
        return value
    if sys.stdin.isatty() and sys.stderr.isatty() and not getattr(args, "json", False):
        sys.stderr.write(f"{prompt} [{default}]: ")
        sys.stderr.flush()
        got = sys.stdin.readline().strip()
        return got or default
    return default


TEMPLATE_COLUMNS = (
    output.col("NAME", "name"),
    output.col("ARCH", "arch", fixed=True),
    output.col("BOOT", "boot", fixed=True),
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
    all), or the list as JSON/YAML; exit 5 when a hypervisor did not answer."""
    from .services.templates import list_templates
    with cli_session(args) as s:
        rows = list_templates(s, s.inventory)
    table = [{"name": r.template.name, "arch": r.template.arch, "boot": r.template.boot_mode, "os": r.template.os,
              "user": r.template.default_user, "sha256": r.template.sha256, "where": _where(r)} for r in rows]
    output.table(args, TEMPLATE_COLUMNS, table, empty="no templates (virtdeck template add NAME IMAGE)",
                 data=[r.to_dict() for r in rows])
    # a host that did not answer: its column says '?'; a partial listing exits 5 (errors.ExitCode)
    down = dict.fromkeys(f"{h.host}: {h.error}" for r in rows for h in r.hosts if h.error)
    for why in down:
        output.warn(f"not listed (partial result): {why}")
    return output.ExitCode.UNREACHABLE if down else 0


def cmd_add(args) -> int:
    from .services.templates import add_template
    from .errors import ValidationError
    url = getattr(args, "url", None)
    if (args.image is None) == (url is None):
        raise ValidationError("image", "give a local image file or --url URL (one of them)")
    default_arch = "x86_64"
    if args.image is not None and not args.kernel:
        from ..backends.image_probe import probe_local
        from .services.image_checks import check_image
        check_image(args.image)  # refused in one sentence before anything else is said
        layout = probe_local(args.image)  # what the image shows; the service decides the same way
        if len(layout.efi_arches) == 1:
            default_arch = layout.efi_arches[0]  # the ESP's only loader says the arch
        if not args.json:
            print(f"image: {layout.describe()}; boot modes it can use: "
                  f"{', '.join(layout.boot_modes()) or 'none seen'}", file=sys.stderr)
    arch = _ask(args, "arch", "architecture (x86_64, aarch64)", default_arch)
    os_name = _ask(args, "os", "operating system (shown in lists, e.g. debian12)", "linux")
    user = _ask(args, "default_user", "the image's default user", "debian")
    progress = None if args.json else (HostsProgress() if url else ProgressBar())
    try:
        with cli_session(args) as s:
            _, tpl = add_template(
                s, s.inventory, args.name, args.image, sha256=args.sha256, arch=arch,
                os_name=os_name, default_user=user, pool=args.pool, kernel=args.kernel,
                initrd=args.initrd, cmdline=args.cmdline, progress=progress, url=url,
                sha256_url=getattr(args, "sha256_url", None), boot=args.boot,
                secure_boot=bool(getattr(args, "secure_boot", False)),
                limit_rate=getattr(args, "limit_rate", None))
    finally:
        if isinstance(progress, HostsProgress):
            progress.close()
    if args.json:
        output.print_data(args, {"name": tpl.name, "volume": tpl.volume, "sha256": tpl.sha256, "pool": tpl.pool,
                                 "arch": tpl.arch, "boot": tpl.boot_mode, "os": tpl.os,
                                 "default_user": tpl.default_user})
    else:
        print(f"template {tpl.name} added ({tpl.arch}, boot {tpl.boot_mode}, sha256 {tpl.sha256}, "
              f"verified on every host)")
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
