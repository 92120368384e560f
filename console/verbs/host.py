"""The ``host`` verbs: declarations only (see :mod:`console.verbs`).

Services: console/services/host_check.py (check), host_admin.py (add, disable, enable, remove),
host_drain.py (drain), hosts_read.py (list, show); the probing itself is backends/preflight.py. CLI handlers:
console/cli_host.py. In the console, check / disable / enable are keys of the Hosts panel
(screens/host_actions.py) on the highlighted host.
"""

from __future__ import annotations

import argparse

from . import Confirm, Group, Verb, arg

GROUPS = (Group("host", "hypervisors: preflight check, onboarding, maintenance", "host_cmd"),)

NAME = arg("name", metavar="NAME", help="host name in the inventory")
JSON = arg("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output")
POOL = arg("--pool", metavar="POOL",
           help="the storage pool to check (default: the pools of the inventory's templates, else virtdeck)")
CREATE_POOL = arg("--create-pool", metavar="PATH",
                  help="define, build and autostart the missing pool as a directory at PATH on the host")


_EXAMPLES = {
    "check": ("virtdeck host check", "virtdeck host check hv1 --json"),
    "add": ("virtdeck host add hv3 192.168.100.13 --user root",),
    "disable": ("virtdeck host disable hv1 --reason 'new RAM'",),
    "enable": ("virtdeck host enable hv1",),
    "drain": ("virtdeck host drain hv1", "virtdeck host drain hv1 --move-to hv2"),
    "remove": ("virtdeck host remove hv3",),
    "list": ("virtdeck host list", "virtdeck host list -o yaml"),
    "show": ("virtdeck host show hv1", "virtdeck host show hv1 --json"),
}


def _host(leaf: str, help: str, service: str, *args, **kw) -> Verb:
    return Verb(name=f"host {leaf}", help=help, cli=f"cli_host.cmd_{leaf}", service=service, args=args,
                examples=_EXAMPLES.get(leaf, ()), **kw)


VERBS = (
    _host("check", "preflight: one line per fact (ssh, libvirt, KVM, pool, OVS/OVN, tools), "
                   "ok/warn/fail with the command that fixes it", "host_check.check",
          arg("name", metavar="NAME", nargs="?", help="host name (default: every hypervisor)"),
          POOL, CREATE_POOL, JSON,
          targets="one", label="Check host", key="C", panel="hosts", action="host_check"),
    _host("add", "add a hypervisor to the inventory after its check passes (a backup is kept)",
          "host_admin.add",
          NAME, arg("address", metavar="ADDRESS", help="IP, DNS name or ssh alias"),
          arg("--user", help="SSH user (default: ssh_config's, else yours)"),
          arg("--port", type=int, help="SSH port (default: ssh_config's, else 22)"),
          arg("--domain-type", choices=("kvm", "qemu"), default="kvm",
              help="kvm (default) or qemu (TCG, no KVM)"),
          POOL, CREATE_POOL,
          arg("--force", action="store_true", help="write it even if the check has fail lines"),
          JSON, targets="one"),
    _host("disable", "maintenance: placement skips the host (with the reason)", "host_admin.disable",
          NAME, arg("--reason", help="why (shown by placement; default 'maintenance')"), JSON,
          targets="one", label="Maintenance (disable)", key="M", panel="hosts", action="host_disable",
          confirm=Confirm("Disable", "Placement will skip it and the console stops connecting to it; "
                                     "its VMs keep running.")),
    _host("enable", "end maintenance: placement may pick the host again", "host_admin.enable",
          NAME, JSON, targets="one", label="Enable", key="E", panel="hosts", action="host_enable"),
    _host("drain", "list the VMs on a host; --move-to moves the stopped ones (vm move)", "host_drain.drain",
          NAME, arg("--move-to", metavar="HOST", help="move every stopped VM to HOST"), JSON, targets="one"),
    _host("remove", "remove a host from the inventory (refused while VMs live there)", "host_admin.remove",
          NAME, arg("--force", action="store_true", help="remove it even if it does not answer"), JSON,
          targets="one"),
    _host("list", "every host: state, VMs, vCPUs and RAM allocated against capacity (cores x ratio)",
          "hosts_read.list_hosts", JSON, panel="hosts", action="panel('hosts')"),
    _host("show", "one host: capacity, allocation, its VMs, its physnets", "hosts_read.show_host",
          NAME, JSON, targets="one", render="hosts_read.show_lines", panel="hosts", action="show_details"),
)
