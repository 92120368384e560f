"""The metrics verbs (one word each, no group): declarations only (see :mod:`console.verbs`).

Service: console/services/metrics.py; collection backends/metrics.py; ring buffers and rates
console/metrics.py. CLI handlers: console/cli_top.py. In the console the same figures are the
Hosts and VMs panels' CPU/RAM columns and sparklines (fed by the live model).
"""

from __future__ import annotations

from . import Group, Verb, arg

GROUPS: tuple[Group, ...] = ()

VERBS = (
    Verb(name="top", help="batch view of hosts and VMs by CPU, like virt-top -b: -n screens "
                          "-d seconds apart, --json one line each",
         cli="cli_top.cmd_top", service="metrics.sample_all", targets="none",
         args=(arg("-n", "--iterations", type=int, default=1, metavar="N",
                   help="how many screens (default 1; 0: until Ctrl-C)"),
               arg("-d", "--delay", type=float, metavar="SECONDS",
                   help="seconds between samples (default: the inventory's metrics.interval)"),
               arg("--sort", choices=("cpu", "rss", "rx", "tx", "rd", "wr", "name"), default="cpu",
                   help="VM order (highest first; name: A-Z)"),
               arg("--limit", type=int, metavar="N", help="at most N VMs per screen")),
    ),
    Verb(name="metrics", help="serve the hosts' and VMs' figures as Prometheus text at "
                              "http://ADDR:PORT/metrics (loopback by default) until Ctrl-C",
         cli="cli_top.cmd_metrics", service="metrics.sample_all", targets="none",
         args=(arg("--listen", default="127.0.0.1:9177", metavar="ADDR:PORT",
                   help="where to serve (default 127.0.0.1:9177; port 0: any free port)"),
               arg("-d", "--delay", type=float, metavar="SECONDS",
                   help="seconds between samples (default: the inventory's metrics.interval)"),
               arg("-n", "--iterations", type=int, default=0, metavar="N",
                   help="stop after N samples (default 0: until Ctrl-C)"))),
)
