"""`virtdeck top` and `virtdeck metrics --listen`: the CLI handlers of the metrics verbs
(declared in console/verbs/metrics.py; service console/services/metrics.py).

``top`` is a batch view in the manner of ``virt-top -b``: every ``-d`` seconds (re-armed after
the sample returns, so a slow host never stacks requests) one sample of every hypervisor, then
hosts and VMs (by CPU, highest first), ``-n`` times (0: until Ctrl-C). The first figures need two
samples, so the first screen comes ``-d`` seconds after start. ``--json`` (or ``-o json``) prints
one JSON object per line per iteration (``{"t", "hosts", "vms"}``) for scripts.

Exit codes: 0, 2 bad input, 5 when no host gave figures in the last iteration.
"""

from __future__ import annotations

import json
import sys
import time

from . import output
from .cli_vm_verbs import cli_session
from .errors import ExitCode, ValidationError


def cmd_top(args) -> int:
    """Print ``-n`` screens (or JSON lines) of host and VM figures, ``-d`` seconds apart."""
    from .services import metrics as svc
    if args.delay is not None and args.delay <= 0:
        raise ValidationError("delay", "-d must be a number of seconds greater than 0")
    if args.iterations < 0:
        raise ValidationError("iterations", "-n must be 0 (until Ctrl-C) or a positive count")
    as_json = output.fmt(args) != "table"
    with cli_session(args) as s:
        delay = args.delay or s.inventory.metrics.interval
        store = svc.new_store(s.inventory, delay)
        errors = svc.sample_all(s, store)
        done = 0
        while args.iterations == 0 or done < args.iterations:
            time.sleep(delay)
            errors = svc.sample_all(s, store)
            fig = svc.figures(store, errors, sort=args.sort, limit=args.limit)
            if as_json:
                print(json.dumps(fig), flush=True)
            else:
                if done:
                    print()
                print(f"virtdeck top  {time.strftime('%H:%M:%S')}  every {delay:g} s")
                print("\n".join(svc.figures_text(fig)), flush=True)
            done += 1
        names = [h.name for h in s.inventory.hypervisors if h.enabled]
    for host, err in sorted(errors.items()):
        print(f"virtdeck: {host}: no figures: {err}", file=sys.stderr)
    return ExitCode.UNREACHABLE if names and len(errors) == len(names) else ExitCode.OK


def cmd_metrics(args) -> int:
    """Serve the hypervisors' figures as Prometheus text at ``http://ADDR:PORT/metrics`` until
    Ctrl-C (or ``-n`` samples), sampling every ``-d`` seconds (re-armed after each sample)."""
    from prometheus_client import CollectorRegistry, start_http_server

    from .services import metrics as svc
    addr, port = svc.parse_listen(args.listen)
    if args.delay is not None and args.delay <= 0:
        raise ValidationError("delay", "-d must be a number of seconds greater than 0")
    with cli_session(args) as s:
        delay = args.delay or s.inventory.metrics.interval
        store = svc.new_store(s.inventory, delay)
        errors: dict[str, str] = {}
        registry = CollectorRegistry(auto_describe=False)
        registry.register(svc.StoreCollector(store, errors))
        try:
            server, thread = start_http_server(port, addr=addr, registry=registry)
        except OSError as exc:
            raise ValidationError("listen", f"cannot listen on {args.listen}: {exc.strerror}") from None
        host, real_port = server.server_address[:2]
        print(f"virtdeck metrics: serving http://{host}:{real_port}/metrics, a sample every "
              f"{delay:g} s (Ctrl-C stops)", flush=True)
        try:
            done = 0
            while args.iterations == 0 or done < args.iterations:
                new = svc.sample_all(s, store)
                errors.clear()
                errors.update(new)
                done += 1
                time.sleep(delay)
        finally:
            server.shutdown()
            thread.join(timeout=5)
    return ExitCode.OK
