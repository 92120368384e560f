"""`virtdeck lab up [--hypervisors N] [--light L] | down | status [--all] | sandbox -- CMD`: the embedded lab
(backends/lab). `up`, `status` and `sandbox` first reap sandboxes whose owner is gone
(backends/lab/owners.py); `status --all` lists every lab and sandbox on the machine."""

from __future__ import annotations

import argparse
import json
import sys


def _log(msg: str) -> None:
    print(msg, flush=True)


def cmd_up(args) -> int:
    from ..backends.lab import fleet
    from ..backends.lab.topology import DEFAULT_HYPERVISORS
    from ..backends.lab.up import up
    light = getattr(args, "light", None)
    if getattr(args, "fleet", False) or fleet.recorded():
        if light:
            from ..backends.lab.state import LabError
            raise LabError("--light is not for a fleet lab; `virtdeck lab down` first, then "
                           "`virtdeck lab up --light N` without --fleet")
        fleet.up(args.hypervisors, log=_log, ovn=getattr(args, "ovn", None))
        return 0
    up(DEFAULT_HYPERVISORS if args.hypervisors is None else args.hypervisors, log=_log,
       ovn=getattr(args, "ovn", None), light=light)
    return 0


def cmd_down(args) -> int:
    from ..backends.lab.down import down
    from ..backends.lab.up import preflight
    preflight()
    left = down(log=_log)
    return 1 if left else 0


def _err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_status(args) -> int:
    import os
    from ..backends.lab.owners import reap_orphans
    from ..backends.lab.state import LabError
    from ..backends.lab.status import check
    if os.geteuid() != 0:
        raise LabError("the lab's status needs root (it looks inside the lab's namespaces): "
                       "run `sudo virtdeck lab status`")
    reap_orphans(_err)
    if getattr(args, "all", False):
        return _status_all(args)
    st = check()
    if getattr(args, "json", False):
        json.dump({"ready": st.ready, "hypervisors": st.hypervisors, "light": st.light,
                   "chassis": list(st.chassis),
                   "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in st.checks],
                   "ovn": st.extra},  # flavour; cluster-ssl: nb_leader/sb_leader [member, address], northd
                  sys.stdout, indent=2)
        print()
    else:
        for line in st.lines():
            print(line)
    return 0 if st.ready else 1


def _status_all(args) -> int:
    """Every lab and sandbox on the machine: owner, age, hosts, running guests, CPU."""
    from ..backends.lab.owners import labs, stray_cgroups
    found = labs()
    if getattr(args, "json", False):
        json.dump([{"kind": i.kind, "path": str(i.path), "owner": i.owner,
                    "owner_alive": i.owner_alive, "orphan": i.orphan,
                    "age_s": None if i.age_s is None else round(i.age_s, 1),
                    "hosts": {n: ok for n, ok in i.hosts}, "guests": i.guests,
                    "processes": len(i.pids), "cpu_pct": round(i.cpu_pct, 1),
                    "cpu_s": round(i.cpu_s, 1)} for i in found], sys.stdout, indent=2)
        print()
        return 0
    if not found:
        print("lab: no lab or sandbox on this machine")
    for i in found:
        print(i.line())
        if i.orphan:
            print(f"        owner gone: `{i.reap_command}`")
    for d in stray_cgroups():  # what the reap above could not remove (busy, or just made)
        print(f"cgroup  {d} belongs to no lab or sandbox")
    return 0


def cmd_sandbox(args) -> int:
    from ..backends.lab.sandbox import run_sandboxed
    from ..backends.lab.state import LabError
    argv = list(args.command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise LabError("give the command to run in the sandbox: `virtdeck lab sandbox -- CMD …`")
    p = run_sandboxed(argv, log=_err)
    if p.signal:
        import signal
        print(f"virtdeck: sandbox ended by {signal.Signals(p.signal).name}; its lab and processes "
              f"are gone", file=sys.stderr)
    if p.stray:
        print(f"virtdeck: the sandboxed lab was still up; stopped {len(p.stray)} processes", file=sys.stderr)
    return p.returncode


def register(subparsers) -> None:
    from ..backends.lab import topology as topo
    p = subparsers.add_parser("lab", help="the embedded lab: OVN central + N libvirt hypervisors in namespaces")
    sub = p.add_subparsers(dest="lab_cmd", metavar="ACTION", required=True)
    u = sub.add_parser("up", help="build or repair the lab (root; builds the guest template once)")
    u.add_argument("--hypervisors", "-n", type=int, default=None, metavar="N",
                   help=f"number of hypervisors, 1..{topo.MAX_HYPERVISORS} (default {topo.DEFAULT_HYPERVISORS}, "
                        f"3 with --fleet; 0 with --light: central + light hosts only)")
    u.add_argument("--light", type=int, default=None, metavar="L",
                   help=f"light hypervisors lh1..lhL, 0..{topo.MAX_LIGHT}, at 192.168.100.201.. (sshd + "
                        f"libvirtd + pool only: no OVS/OVN, for scale tests; default: as many as "
                        f"the lab has)")
    u.add_argument("--fleet", action="store_true",
                   help="shape the lab as an operator's fleet (backends/lab/fleet.py): non-root operator "
                        "vdop, a bastion on port 2222, hv2 only through it, the last hypervisor fresh; "
                        "kept by every later up until `lab down`")
    u.add_argument("--ovn", choices=topo.OVN_FLAVOURS, default=None,
                   help=f"OVN central: {topo.OVN_STANDALONE} (one NB/SB server, tcp) or "
                        f"{topo.OVN_CLUSTER_SSL} (3 raft members, SSL with a lab PKI); default: "
                        f"what the lab runs, else {topo.DEFAULT_OVN}")
    u.set_defaults(func=cmd_up)
    d = sub.add_parser("down", help="destroy guests and remove every namespace, link and process of the lab")
    d.set_defaults(func=cmd_down)
    s = sub.add_parser("status", help="readiness check; exit status 1 when not ready "
                                      "(reaps sandboxes whose owner is gone)")
    s.add_argument("--all", action="store_true",
                   help="list every lab and sandbox on the machine: owner, age, hosts, guests, CPU")
    s.set_defaults(func=cmd_status)
    x = sub.add_parser("sandbox", help="run a command in private namespaces where lab up/down never "
                                       "touch the machine's lab (cleaned up afterwards, also on "
                                       "SIGTERM/SIGINT/SIGHUP)")
    x.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD …")
    x.set_defaults(func=cmd_sandbox)
