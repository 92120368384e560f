"""The lab's OVN central: NB and SB ovsdb-servers and ovn-northd in host "central", in one of
two flavours (topology.OVN_FLAVOURS, chosen by `virtdeck lab up --ovn`, recorded in state.json):

- ``standalone``: one NB and one SB ovsdb-server (unix socket + plain ``ptcp:`` 6641/6642 on
  every address) and one ovn-northd on the unix sockets — the lab as it always was.
- ``cluster-ssl``: what production runs (MicroOVN, kolla, ovn-kubernetes). Three raft members,
  one per address of central's eth0 (topology.CENTRAL_MEMBERS, member 1 = 192.168.100.10):
  member i runs an NB ovsdb-server (clients ``pssl:6641:ADDR``, raft ``ssl:ADDR:6643``) and an SB
  one (``pssl:6642:ADDR``, raft ``ssl:ADDR:6644``), each with its own unix socket, control
  socket and PID file under /run/ovn (``ovnnb_db-i.{sock,ctl,pid}``), database under
  /var/lib/ovn (``ovnnb_db-i.db``: ``ovsdb-tool create-cluster`` for member 1, ``join-cluster``
  for 2 and 3) and log under /var/log/ovn. Member i's certificate is ``central-i`` of the lab
  PKI (pki.py); ovsdb-server requires a client certificate signed by the lab CA. Three
  ovn-northd run, one per member, on the unix-socket member lists (they share central's mount
  namespace); the SB lock makes one active, the others standby.

Why one namespace with three addresses and not three hosts: the raft and SSL behaviour a client
sees is the same (three endpoints, one leader, a member that dies), killing one member is
killing its PIDs (``member_pid``), and `lab down`/sandbox cleanup, which stop every process of
the vd-central namespace, remove all of it with no new host to track.

Public API: :func:`ensure` ``(h, pid, flavour)``; :func:`flavour` ``() -> str`` (the lab's, from
state.json); :func:`ctl_argv` ``("nb"|"sb", flavour) -> argv prefix`` for ovn-nbctl/ovn-sbctl from
the machine; :func:`ctl` ``("nb"|"sb", args) -> CompletedProcess`` runs one; :func:`local_remote`
``("nb"|"sb") -> str`` the unix remote(s) inside central; :func:`pidfiles`/:func:`pids`
``("nb"|"sb"|"northd")`` its daemons; :func:`leaders` ``() -> dict`` which member leads NB and SB
and which northd is active; :func:`member_pid`, :func:`member_status`. Raises
:class:`state.LabError`.
"""

from __future__ import annotations

import re
import subprocess
import time

from . import hosts as H
from . import netns as N
from . import pki
from . import topology as topo
from .state import LabError, host_dir, load_state, read_pidfile, run

KINDS = {"nb": ("OVN_Northbound", "ovn-nb", topo.NB_PORT, topo.NB_RAFT_PORT),
         "sb": ("OVN_Southbound", "ovn-sb", topo.SB_PORT, topo.SB_RAFT_PORT)}
MEMBERS = range(1, len(topo.CENTRAL_MEMBERS) + 1)


def flavour() -> str:
    """The OVN flavour of the lab in this lab dir (state.json ``ovn``). Unset: standalone, what
    every lab built before flavours runs (whatever DEFAULT_OVN says)."""
    return load_state().get("ovn") or topo.OVN_STANDALONE


def ctl_argv(kind: str, flav: str | None = None, timeout: int = 5) -> list[str]:
    """``ovn-nbctl``/``ovn-sbctl`` argv prefix reaching the lab's NB/SB from the machine: the tcp
    remote, or the ssl member list with the operator's key/certificate and the lab CA.
    ``kind``: "nb" or "sb"; ``flav``: default the lab's; ``timeout``: seconds (``--timeout``)."""
    flav = flav or flavour()
    tool = "ovn-nbctl" if kind == "nb" else "ovn-sbctl"
    remote = topo.nb_remote(flav) if kind == "nb" else topo.sb_remote(flav)
    argv = [tool, f"--db={remote}", f"--timeout={timeout}"]
    if flav == topo.OVN_CLUSTER_SSL:
        op = pki.pair("operator")
        argv += [f"--private-key={op.key}", f"--certificate={op.cert}",
                 f"--ca-cert={pki.ca_bundle()}"]
    return argv


def ctl(kind: str, args: list[str], *, timeout: int = 10, check: bool = True,
        flav: str | None = None) -> subprocess.CompletedProcess:
    """Run ``ovn-nbctl``/``ovn-sbctl`` ARGS from the machine against the lab's NB/SB, whatever
    its flavour (:func:`ctl_argv`: plain tcp, or the ssl member list with the operator's
    certificate — ovn-nbctl finds the leader itself). Returns the CompletedProcess (text);
    raises LabError naming the command and its stderr when ``check`` and it fails.
    ``timeout``: seconds (ovn-nbctl's own ``--timeout``; the process gets 10 s more)."""
    argv = [*ctl_argv(kind, flav, timeout), *args]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 10)
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(argv[:1] + args)}: no answer within {timeout + 10} s") from None
    if check and p.returncode != 0:
        raise LabError(f"{' '.join(argv[:1] + args)} failed: {p.stderr.strip()}")
    return p


def local_remote(kind: str, flav: str | None = None) -> str:
    """The NB/SB remote as a client INSIDE central reaches it: ``unix:/run/ovn/ovnnb_db.sock``
    (standalone) or the members' unix sockets, comma-separated (cluster-ssl; a unix socket
    needs no certificate). ``kind``: "nb" or "sb"; ``flav``: default the lab's."""
    if (flav or flavour()) == topo.OVN_CLUSTER_SSL:
        return ",".join(f"unix:{member_path(kind, i, 'sock')}" for i in MEMBERS)
    return f"unix:{topo.NB_SOCKET if kind == 'nb' else topo.SB_SOCKET}"


def pidfiles(what: str, flav: str | None = None) -> list[str]:
    """PID files inside central of ``what`` ("nb", "sb" ovsdb-servers or "northd"): one for
    standalone, one per raft member (member order) for cluster-ssl. ``flav``: default the lab's."""
    if (flav or flavour()) == topo.OVN_CLUSTER_SSL:
        if what == "northd":
            return [f"/run/ovn/ovn-northd-{i}.pid" for i in MEMBERS]
        return [member_path(what, i, "pid") for i in MEMBERS]
    return ["/run/ovn/ovn-northd.pid" if what == "northd" else f"/run/ovn/ovn{what}_db.pid"]


def pids(what: str, flav: str | None = None) -> list[int]:
    """PIDs (as the machine sees them) of the running ``what`` ("nb"/"sb"/"northd", see
    :func:`pidfiles`); the ones not running are left out."""
    out = []
    for f in pidfiles(what, flav):
        try:
            pid = read_pidfile(H.host_path("central", f))
        except LabError:
            pid = None
        if pid:
            out.append(pid)
    return out


def ensure(h: topo.LabHost, pid: int, flav: str) -> None:
    """Start what of ``flav``'s central is not running in ``h`` (idempotent)."""
    if flav == topo.OVN_CLUSTER_SSL:
        ensure_cluster(h, pid)
    else:
        ensure_standalone(h, pid)


def ensure_standalone(h: topo.LabHost, pid: int) -> None:
    """OVN NB and SB ovsdb-servers (unix socket + TCP) and ovn-northd in ``h``."""
    d = host_dir(h.name) / "var-lib-ovn"
    for db, schema in (("ovnnb_db.db", "ovn-nb"), ("ovnsb_db.db", "ovn-sb")):
        if not (d / db).exists():
            run(["ovsdb-tool", "create", str(d / db), f"/usr/share/ovn/{schema}.ovsschema"])
    for kind, port in (("nb", topo.NB_PORT), ("sb", topo.SB_PORT)):
        H._start(h, pid, f"/run/ovn/ovn{kind}_db.pid", [
            "ovsdb-server", f"/var/lib/ovn/ovn{kind}_db.db",
            f"--remote=punix:/run/ovn/ovn{kind}_db.sock", f"--remote=ptcp:{port}",
            f"--pidfile=/run/ovn/ovn{kind}_db.pid", f"--unixctl=/run/ovn/ovn{kind}_db.ctl",
            f"--log-file=/var/log/ovn/ovsdb-server-{kind}.log", "--detach", "--no-chdir",
        ], f"OVN {kind.upper()} ovsdb-server")
    H._start(h, pid, "/run/ovn/ovn-northd.pid", [
        "ovn-northd", f"--ovnnb-db=unix:{topo.NB_SOCKET}", f"--ovnsb-db=unix:{topo.SB_SOCKET}",
        "--pidfile=/run/ovn/ovn-northd.pid", "--log-file=/var/log/ovn/ovn-northd.log",
        "--detach", "--no-chdir",
    ], "ovn-northd")


def member_path(kind: str, i: int, ext: str) -> str:
    """Member ``i``'s file inside central: ``/run/ovn/ovnnb_db-1.pid`` (ext pid/ctl/sock),
    ``/var/lib/ovn/ovnnb_db-1.db`` (ext db)."""
    return f"/var/lib/ovn/ovn{kind}_db-{i}.db" if ext == "db" else f"/run/ovn/ovn{kind}_db-{i}.{ext}"


def ensure_cluster(h: topo.LabHost, pid: int) -> None:
    """The cluster-ssl central in ``h`` (see the module doc): addresses, PKI, raft databases,
    six ovsdb-servers, three ovn-northd. Waits until each database has a leader and three
    members (LabError after 30 s, naming the log)."""
    for addr in topo.CENTRAL_MEMBERS[1:]:
        N.ensure_addr(h.netns, "eth0", addr, topo.PREFIX)
    pairs = pki.ensure([f"central-{i}" for i in MEMBERS])
    ca = str(pki.ca_bundle())
    d = host_dir(h.name) / "var-lib-ovn"
    for kind, (db_name, schema, _port, raft) in KINDS.items():
        first = f"ssl:{topo.CENTRAL_MEMBERS[0]}:{raft}"
        for i in MEMBERS:
            db = d / f"ovn{kind}_db-{i}.db"
            if db.exists():
                continue
            local = f"ssl:{topo.CENTRAL_MEMBERS[i - 1]}:{raft}"
            if i == 1:
                run(["ovsdb-tool", "create-cluster", str(db), f"/usr/share/ovn/{schema}.ovsschema", local])
            else:
                run(["ovsdb-tool", "join-cluster", str(db), db_name, local, first])
    for kind, (_db, _schema, port, _raft) in KINDS.items():
        for i in MEMBERS:
            p = pairs[f"central-{i}"]
            H._start(h, pid, member_path(kind, i, "pid"), [
                "ovsdb-server", member_path(kind, i, "db"),
                f"--remote=punix:{member_path(kind, i, 'sock')}",
                f"--remote=pssl:{port}:{topo.CENTRAL_MEMBERS[i - 1]}",
                f"--private-key={p.key}", f"--certificate={p.cert}", f"--ca-cert={ca}",
                f"--pidfile={member_path(kind, i, 'pid')}", f"--unixctl={member_path(kind, i, 'ctl')}",
                f"--log-file=/var/log/ovn/ovsdb-server-{kind}-{i}.log", "--detach", "--no-chdir",
            ], f"OVN {kind.upper()} raft member {i}")
    nb = ",".join(f"unix:{member_path('nb', i, 'sock')}" for i in MEMBERS)
    sb = ",".join(f"unix:{member_path('sb', i, 'sock')}" for i in MEMBERS)
    for i in MEMBERS:
        H._start(h, pid, f"/run/ovn/ovn-northd-{i}.pid", [
            "ovn-northd", f"--ovnnb-db={nb}", f"--ovnsb-db={sb}",
            f"--pidfile=/run/ovn/ovn-northd-{i}.pid", f"--unixctl=/run/ovn/ovn-northd-{i}.ctl",
            f"--log-file=/var/log/ovn/ovn-northd-{i}.log", "--detach", "--no-chdir",
        ], f"ovn-northd {i}")
    deadline = time.monotonic() + 30
    while True:
        st = {k: [member_status(k, i, pid) for i in MEMBERS] for k in KINDS}
        if all(s.get("leader") and s.get("servers") == len(MEMBERS) for ss in st.values() for s in ss):
            return
        if time.monotonic() > deadline:
            raise LabError(f"central: the NB/SB raft clusters did not form within 30 s ({st}); "
                           f"logs in {host_dir(h.name) / 'log/ovn'}")
        time.sleep(0.1)


def member_pid(kind: str, i: int) -> int | None:
    """PID of raft member ``i`` (1-based) of ``kind`` ("nb"/"sb"), None when it is not running."""
    try:
        return read_pidfile(H.host_path("central", member_path(kind, i, "pid")))
    except LabError:
        return None


def parse_cluster_status(text: str) -> dict:
    """The facts of one ``ovs-appctl cluster/status DB`` reply: {"role": "leader"|"follower"|
    "candidate"|None, "status": "cluster member"|…|None, "address": this server's raft address
    ("ssl:192.168.100.10:6643"), "servers": [raft addresses it lists], "leader": the leader's raft
    address or None (unknown, e.g. during an election)}."""
    role = re.search(r"^Role: (\S+)", text, re.M)
    status = re.search(r"^Status: (.+)$", text, re.M)
    address = re.search(r"^Address: (\S+)", text, re.M)
    servers = dict(re.findall(r"^\s+(\S+) \(\S+ at ((?:ssl|tcp):\S+?)\)", text, re.M))
    sid = re.search(r"^Leader: (\S+)", text, re.M)
    leader = None
    if sid and sid.group(1) == "self":
        leader = address.group(1) if address else None
    elif sid:
        leader = servers.get(sid.group(1))
    return {"role": role.group(1) if role else None,
            "status": status.group(1).strip() if status else None,
            "address": address.group(1) if address else None,
            "servers": list(servers.values()), "leader": leader}


def member_status(kind: str, i: int, pid: int | None = None) -> dict:
    """Member ``i``'s view from ``cluster/status`` (:func:`parse_cluster_status`), its raft
    addresses turned into member numbers: {"role", "status", "leader": member number it sees as
    leader or None, "servers": how many it lists}; {} when it does not answer (down, or not a
    cluster lab). ``pid``: central's holder (default: from state.json)."""
    try:
        ctl = H.host_path("central", member_path(kind, i, "ctl"), pid)
    except LabError:
        return {}
    try:
        p = subprocess.run(["ovs-appctl", "-t", str(ctl), "--timeout=2", "cluster/status",
                            KINDS[kind][0]], capture_output=True, text=True, timeout=4)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if p.returncode != 0:
        return {}
    st = parse_cluster_status(p.stdout)
    host = st["leader"].split(":")[1] if st["leader"] else None
    leader = topo.CENTRAL_MEMBERS.index(host) + 1 if host in topo.CENTRAL_MEMBERS else None
    return {"role": st["role"], "status": st["status"], "leader": leader,
            "servers": len(st["servers"])}


def northd_active() -> int | None:
    """Which ovn-northd (1-based) holds the SB lock ("Status: active"), None if none does."""
    for i in MEMBERS:
        try:
            ctl = H.host_path("central", f"/run/ovn/ovn-northd-{i}.ctl")
            p = subprocess.run(["ovs-appctl", "-t", str(ctl), "--timeout=2", "status"],
                               capture_output=True, text=True, timeout=4)
        except (LabError, OSError, subprocess.TimeoutExpired):
            continue
        if p.returncode == 0 and "active" in p.stdout and "standby" not in p.stdout:
            return i
    return None


def leaders() -> dict:
    """{"nb": (member, address) or None, "sb": …, "members": {"nb": n up, "sb": n up},
    "northd": active member or None} from the members that answer (a majority agrees on the
    leader once an election is over)."""
    out: dict = {"members": {}}
    for kind in KINDS:
        seen = [member_status(kind, i) for i in MEMBERS]
        up = [s for s in seen if s]
        out["members"][kind] = len(up)
        votes = [s["leader"] for s in up if s.get("leader")]
        lead = max(set(votes), key=votes.count) if votes else None
        out[kind] = (lead, topo.CENTRAL_MEMBERS[lead - 1]) if lead else None
    out["northd"] = northd_active()
    return out
