"""The fault suite's driver, run INSIDE a sandbox lab by tests/faults/test_faults.py (not collected:
no test_ prefix). Never run it on the shared lab: it kills and freezes the lab's daemons.

    python tests/faults/fault_inner.py RESULT_JSON [CASE,CASE,…]

Brings a 2-hypervisor lab up (in the sandbox's namespaces), makes one overlay network, then runs
each case of :data:`CASES`: a verb runs in a child process (the service the CLI calls, with the
create's step hook holding it at a step boundary, or the real `virtdeck` CLI); the fault is
injected (SIGKILL or SIGSTOP of sshd, libvirtd or the OVN NB ovsdb-server, by PID, in the
sandbox; the hypervisor's underlay link cut; or SIGKILL of the verb's own process); the verb must end by itself within
:data:`BOUND_S` while the fault lasts. Then the fault is cleared (SIGCONT, or the lab's own
idempotent `up` restarts what was killed), and a census of every hypervisor (domains, volumes,
NVRAM files) and of OVN (rows whose external_ids name the VM) is taken before and after the
reconcile (the drift check's fix, `virtdeck check --fix`).

Writes RESULT_JSON: ``{"cases": [{case, verb, fault, step, outcome, rc, error, detect_s,
recover_s, orphans_before, orphans_after, census, consistent, why}], "up_s": float}``.
``detect_s``: fault injected (the verb released into it) → the verb's reported end;
``recover_s``: fault cleared → the drift check answers for every host and the reconcile is done.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
import traceback
from pathlib import Path

BOUND_S = 120.0       # a verb still running this long after its fault is a hang (a finding)
TENANT = "demo"
NET = "fltnet"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl faults"
POOL = "virtdeck"

# (case id, verb, fault, step or delay): fault = "<what>-<how>", what in sshd|libvirtd|nb|cli
# with how in kill|freeze, or link-cut (the host's underlay veth down); for create the fault lands after that step (the next step meets it).
CASES = (
    ("create-libvirtd-freeze-disk", "create", "libvirtd-freeze", "disk"),
    ("create-libvirtd-kill-seed", "create", "libvirtd-kill", "seed"),
    ("create-sshd-kill-ports", "create", "sshd-kill", "ports"),
    ("create-sshd-freeze-disk", "create", "sshd-freeze", "disk"),
    ("create-nb-freeze-seed", "create", "nb-freeze", "seed"),
    ("create-nb-kill-ports", "create", "nb-kill", "ports"),
    ("create-cli-kill-ports", "create", "cli-kill", "ports"),
    ("create-cli-kill-define", "create", "cli-kill", "define"),
    ("create-link-cut-seed", "create", "link-cut", "seed"),
    ("delete-libvirtd-freeze", "delete", "libvirtd-freeze", None),
    ("delete-link-cut", "delete", "link-cut", None),
    ("delete-nb-freeze", "delete", "nb-freeze", None),
    ("delete-cli-kill", "delete", "cli-kill", 0.3),
    ("move-target-libvirtd-kill", "move", "libvirtd-kill", None),
    ("resize-libvirtd-freeze", "resize", "libvirtd-freeze", None),
)

CHILD = textwrap.dedent("""
    import json, sys, time
    from virtdeck.config.inventory import load
    from virtdeck.backends.session import Session
    from virtdeck.console.errors import VirtdeckError
    from virtdeck.console.services import provision as pv, vm_delete, vm_move, vm_resize
    inv = load(sys.argv[1]); spec = json.loads(sys.argv[2])
    def hook(phase, step, ctx):
        if phase == "after" and step == spec.get("hold"):
            print("AT", step, ctx.host, flush=True)
            sys.stdin.readline()
    s = Session(inv)
    out = {"outcome": "ok", "rc": 0, "error": ""}
    try:
        if spec["verb"] == "create":
            r = pv.create_vm(s, inv, pv.VmRequest(
                name=spec["name"], tenant=spec["tenant"], template="debian12", vcpus=1, ram_mib=128,
                disk_gib=3, networks=(spec["net"],), ssh_keys=(spec["key"],),
                password_hash="$6$rounds=5000$faultsalt$" + "x" * 86, host=spec["host"], start=False),
                hook=hook)
            out["host"] = r.host
        else:
            print("AT start", spec.get("host"), flush=True)
            sys.stdin.readline()
            if spec["verb"] == "delete":
                r = vm_delete.delete(s, spec["name"])
            elif spec["verb"] == "move":
                r = vm_move.move(s, spec["name"], spec["to"])
            else:
                r = vm_resize.resize(s, spec["name"], vcpus=2, memory_mib=256)
            out["outcome"], out["message"] = r.outcome, r.message
    except VirtdeckError as exc:
        out.update(outcome="failed", rc=int(exc.exit_code), error=str(exc))
    except Exception as exc:
        out.update(outcome="crashed", rc=99, error=f"{type(exc).__name__}: {exc}")
    print("RESULT", json.dumps(out), flush=True)
    s.close()
    sys.exit(out["rc"])
""")


def log(msg: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------ the lab

def lab_pids(host: str, comm: str) -> list[int]:
    """PIDs of processes named ``comm`` in lab host ``host``'s network namespace."""
    from virtdeck.backends.lab import hosts as H
    holder = H.holder_pid(host)
    want = os.stat(f"/proc/{holder}/ns/net").st_ino
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if (d / "comm").read_text().strip() == comm and os.stat(d / "ns/net").st_ino == want:
                out.append(int(d.name))
        except OSError:
            pass
    return sorted(out)


def targets(what: str, host: str) -> list[int]:
    """The PIDs a fault on ``what`` hits: every sshd of the host (listener and sessions: the
    link dies), its libvirtd, or central's NB ovsdb-server(s) from their PID files: the one of a
    standalone lab, every raft member of a cluster-ssl one (the NB as a whole goes away; losing
    only the leader is a failover, tests/lab/ssl_cluster_inner.py)."""
    from virtdeck.backends.lab import hosts as H
    from virtdeck.backends.lab.state import read_pidfile
    if what == "sshd":
        return lab_pids(host, "sshd")
    if what == "libvirtd":
        return [read_pidfile(H.host_path(host, "/run/libvirtd.pid"))]
    if what == "nb":
        from virtdeck.backends.lab import central
        return central.pids("nb")
    raise ValueError(what)


def inject(fault: str, host: str, child: subprocess.Popen) -> dict:
    what, how = fault.split("-")
    if what == "cli":
        child.send_signal(signal.SIGKILL)
        return {"pids": [child.pid], "what": what, "how": how, "host": host}
    if what == "link":  # the host's underlay veth (its end on the lab bridge) goes down
        from virtdeck.backends.lab import topology as topo
        veth = topo.by_name(host).underlay_veth
        subprocess.run(["ip", "link", "set", veth, "down"], check=True)
        return {"pids": [], "what": what, "how": how, "host": host, "veth": veth}
    where = "central" if what == "nb" else host
    pids = [p for p in targets(what, where) if p]
    for pid in pids:
        os.kill(pid, signal.SIGKILL if how == "kill" else signal.SIGSTOP)
    return {"pids": pids, "what": what, "how": how, "host": where}


def clear(inj: dict) -> None:
    """Undo the fault: SIGCONT what was frozen; the lab's idempotent up restarts what was killed."""
    if inj["what"] == "cli":
        return
    if inj["what"] == "link":
        subprocess.run(["ip", "link", "set", inj["veth"], "up"], check=True)
        return
    if inj["how"] == "freeze":
        for pid in inj["pids"]:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        return
    from virtdeck.backends.lab.up import up
    up(2, log=lambda m: None)


# ------------------------------------------------------------------------------------ census

def census(session, inventory, name: str) -> dict:
    """Everything named for VM ``name``: per hypervisor its domains, volumes (``name.*`` /
    ``name-*``) and NVRAM files; in OVN every row whose external_ids carry ``virtdeck:vm`` =
    name (LSPs, DHCP_Options, NAT). Also the domain's vCPUs/RAM where defined."""
    from virtdeck.backends import domains, owner_marks, storage
    out: dict = {"hosts": {}, "ovn": [], "unreachable": []}
    for h in inventory.hypervisors:
        try:
            conn = session.libvirt(h.name)
            doms = [d for d in conn.listAllDomains(0) if d.name() == name]
            vols = [v.name for v in storage.list_volumes(conn, h.name, POOL)
                    if v.name.startswith(name + ".") or v.name.startswith(name + "-")]
            nvram = [f for f in owner_marks.read_host(session, h.name).nvram if f.startswith(name + "_")]
            size = None
            if doms:
                f = domains.facts(doms[0], h.name, inactive=True)
                size = [f.vcpus, f.memory_mib]
            out["hosts"][h.name] = {"domains": len(doms), "volumes": sorted(vols), "nvram": nvram, "size": size}
        except Exception as exc:  # noqa: BLE001 - a census that cannot see a host says so
            out["unreachable"].append(f"{h.name}: {exc}")
    api = session.nb()
    time.sleep(0.3)  # the replica catches up with the child's transactions
    for table, t in api.tables.items():
        if "external_ids" not in t.columns:
            continue
        for r in t.rows.values():
            if (r.external_ids or {}).get("virtdeck:vm") == name:
                out["ovn"].append(f"{table} {r.uuid}")
    return out


def marks_of(session, inventory, name: str) -> list:
    """The owner marks naming VM ``name`` on each hypervisor: [host, busy, volumes]."""
    from virtdeck.backends import owner_marks
    out = []
    for h in inventory.hypervisors:
        try:
            out += [[h.name, m.busy, list(m.volumes)] for m in owner_marks.read_host(session, h.name).marks
                    if m.vm == name]
        except Exception as exc:  # noqa: BLE001
            out.append([h.name, "unreadable", str(exc)[:200]])
    return out


def census_when_reachable(session, inventory, name: str, timeout: float = 60.0) -> dict:
    """:func:`census` once every host and the NB answer again (they were just restarted)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            c = census(session, inventory, name)
            if not c["unreachable"] or time.monotonic() > deadline:
                return c
        except Exception:  # noqa: BLE001 - the NB may still be starting
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def judge(c: dict) -> tuple[str, int]:
    """``("complete"|"nothing"|"partial", orphans)``: complete = one domain with its two volumes
    on one host and nothing of it elsewhere, plus its LSP; nothing = no trace anywhere; else
    partial, and every resource of it counts as an orphan."""
    holders = [h for h, v in c["hosts"].items() if v["domains"]]
    things = sum(v["domains"] + len(v["volumes"]) + len(v["nvram"]) for v in c["hosts"].values()) + len(c["ovn"])
    if not things:
        return "nothing", 0
    if len(holders) == 1:
        h = c["hosts"][holders[0]]
        others = sum(v["domains"] + len(v["volumes"]) + len(v["nvram"])
                     for n, v in c["hosts"].items() if n != holders[0])
        if h["domains"] == 1 and len(h["volumes"]) == 2 and not h["nvram"] and c["ovn"] and not others:
            return "complete", 0
        return "partial", others + (0 if len(h["volumes"]) == 2 else len(h["volumes"]))
    return "partial", things


# ------------------------------------------------------------------------------------ cases

LAST_INJ: dict | None = None  # the fault in force, so a case that breaks still clears it


def go(p: subprocess.Popen) -> None:
    """Release the child held at its step boundary (it may be dead already: cli-kill)."""
    try:
        p.stdin.write("go\n")
        p.stdin.flush()
    except (BrokenPipeError, OSError):
        pass


def start_child(inv_path: Path, spec: dict, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(inv_path), json.dumps(spec)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def read_line(p: subprocess.Popen, timeout: float) -> str:
    r, _, _ = select.select([p.stdout], [], [], timeout)
    return p.stdout.readline() if r else ""


def wait_result(p: subprocess.Popen, timeout: float) -> dict | None:
    """The child's RESULT line (None when killed or silent); kills it after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = read_line(p, max(0.05, deadline - time.monotonic()))
        if line.startswith("RESULT "):
            p.wait(10)
            return json.loads(line[7:])
        if line == "" and p.poll() is not None:
            return None
    p.kill()
    p.wait()
    return {"outcome": "hung", "rc": None, "error": f"still running {timeout:g} s after the fault"}


def make_vm(inv_path: Path, name: str, host: str, env: dict) -> None:
    p = start_child(inv_path, {"verb": "create", "name": name, "tenant": TENANT, "net": NET, "key": KEY,
                               "host": host, "hold": None}, env)
    res = wait_result(p, BOUND_S)
    if not res or res["outcome"] != "ok":
        raise RuntimeError(f"set-up create of {name} failed: {res} {p.stderr.read()[-2000:]}")


def reconcile(session) -> tuple[float, dict]:
    """The drift check until every host answers, then its fix (the safe findings)."""
    from virtdeck.console.services import drift
    deadline = time.monotonic() + 90
    while True:
        try:
            rep = drift.check(session)
            if not rep["partial"] or time.monotonic() > deadline:
                break
        except Exception:  # noqa: BLE001 - the NB may still be coming back
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)
    fixed = drift.fix(session, rep) if rep["safe"] or rep.get("stale_marks") else {}
    return time.monotonic(), {"safe": rep["safe"], "partial": rep["partial"],
                              "stale": [list(x) for x in drift.stale_marks(rep["_facts"])],
                              "seen": [[f.kind, f.subject] for f in rep["_findings"] if "flt" in f.subject],
                              "fixed": {k: v for k, v in fixed.items() if not k.startswith("_")}}


def run_case(case: tuple, inv_path: Path, env: dict, n: int) -> dict:
    from virtdeck.backends.session import Session
    from virtdeck.config.inventory import load
    cid, verb, fault, where = case
    name = f"flt{n:02d}-{verb[:3]}"
    inv = load(inv_path)
    rec = {"case": cid, "verb": verb, "fault": fault, "step": where if isinstance(where, str) else None, "vm": name}
    spec = {"verb": verb, "name": name, "tenant": TENANT, "net": NET, "key": KEY, "host": "hv1"}
    if verb == "create":
        spec["hold"] = where
    else:
        make_vm(inv_path, name, "hv1", env)
        spec["to"] = "hv2"
    p = start_child(inv_path, spec, env)
    line = read_line(p, BOUND_S)
    if not line.startswith("AT "):
        p.kill()
        raise RuntimeError(f"{cid}: the verb did not reach its step: {line!r} {p.stderr.read()[-3000:]}")
    fault_host = "hv2" if verb == "move" else "hv1"
    global LAST_INJ
    if fault == "cli-kill" and not isinstance(where, str):  # mid-verb, by timing
        go(p)
        t_inject = time.monotonic()
        time.sleep(where)
        LAST_INJ = inj = inject(fault, fault_host, p)
    else:  # at the step boundary: the verb goes on into the fault
        LAST_INJ = inj = inject(fault, fault_host, p)
        t_inject = time.monotonic()
        go(p)
    res = wait_result(p, BOUND_S) or {"outcome": "killed", "rc": -9, "error": ""}
    t_end = time.monotonic()
    rec.update(outcome=res["outcome"], rc=res["rc"], error=res.get("error", "")[:400],
               message=res.get("message", ""), detect_s=round(t_end - t_inject, 2))
    clear(inj)
    LAST_INJ = None
    t_clear = time.monotonic()
    with Session(inv) as s:
        before = census_when_reachable(s, inv, name)
        rec["marks_before"] = marks_of(s, inv, name)
        rounds = []
        deadline = time.monotonic() + 45
        while True:  # a killed verb's owner mark is held until sshd notices the dead client
            t_done, rep = reconcile(s)
            rounds.append(rep)
            after = census(s, inv, name)
            state_after, orphans_after = judge(after)
            if state_after != "partial" or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        rec["reconcile"] = rounds
        rec["marks"] = marks_of(s, inv, name)
        from virtdeck.console.services import drift
        rec["findings"] = [[f.kind, f.subject] for f in drift.check(s)["_findings"] if name in f.subject]
    rec["recover_s"] = round(t_done - t_clear, 2)
    state_before, rec["orphans_before"] = judge(before)
    rec["orphans_after"] = orphans_after
    rec["census_before"], rec["census"] = before, after
    rec["state_before"], rec["state"] = state_before, state_after
    rec["consistent"], rec["why"] = consistent(verb, res, after, state_after)
    cleanup(inv_path, name, env)
    return rec


def consistent(verb: str, res: dict, census_: dict, state: str) -> tuple[bool, str]:
    """Does the reported outcome match the census (after the reconcile)?"""
    ok = res["outcome"] == "ok"
    if state == "partial":
        return False, "a partial VM is left after the reconcile"
    if res["outcome"] in ("hung", "crashed"):
        return False, f"the verb {res['outcome']}"
    if verb == "create":
        want = "complete" if ok else "nothing"
        if res["outcome"] == "killed":
            return True, f"killed: {state}"  # no report to contradict; not partial
        return state == want, f"reported {res['outcome']}, census {state}"
    if verb == "delete":
        if res["outcome"] == "killed":
            return True, f"killed: {state}"
        return (state == "nothing") if ok else (state == "complete"), f"reported {res['outcome']}, census {state}"
    holder = next((h for h, v in census_["hosts"].items() if v["domains"]), None)
    if verb == "move":
        return (state == "complete" and holder == ("hv2" if ok else "hv1"),
                f"reported {res['outcome']}, VM on {holder}")
    size = census_["hosts"][holder]["size"] if holder else None
    return (size == ([2, 256] if ok else [1, 128]), f"reported {res['outcome']}, size {size}")


def cleanup(inv_path: Path, name: str, env: dict) -> None:
    from virtdeck.backends.session import Session
    from virtdeck.config.inventory import load
    from virtdeck.console.services import vm_delete
    with Session(load(inv_path)) as s:
        try:
            vm_delete.delete(s, name, missing_ok=True)
        except Exception as exc:  # noqa: BLE001
            log(f"cleanup of {name}: {exc}")


def main() -> None:
    result_path = Path(sys.argv[1])
    only = set(sys.argv[2].split(",")) if len(sys.argv) > 2 and sys.argv[2] else None
    from virtdeck.backends.lab.state import lab_dir
    from virtdeck.backends.lab.up import up
    from virtdeck.backends.ovn import networks as ovn_networks
    from virtdeck.backends.session import Session
    from virtdeck.config.inventory import load
    t0 = time.monotonic()
    up(2, log=lambda m: None)
    up_s = time.monotonic() - t0
    inv_path = lab_dir() / "inventory.toml"
    env = dict(os.environ, VIRTDECK_AUDIT_LOG=str(result_path.with_suffix(".audit.jsonl")))
    with Session(load(inv_path)) as s:
        ovn_networks.create_network(s.nb(), ovn_networks.NetworkSpec(
            tenant=TENANT, name=NET, kind="overlay", cidr="10.77.0.0/24", gateway="10.77.0.1"))
    out = {"up_s": round(up_s, 1), "cases": []}
    try:
        run_cases(out, result_path, inv_path, env, only)
    finally:
        from virtdeck.backends.lab.down import down
        down(log=lambda m: None)  # the sandbox's own lab: nothing of it outlives the run


def run_cases(out: dict, result_path: Path, inv_path: Path, env: dict, only: set | None) -> None:
    global LAST_INJ
    for n, case in enumerate(CASES):
        if only and case[0] not in only:
            continue
        log(f"case {case[0]}")
        t = time.monotonic()
        try:
            rec = run_case(case, inv_path, env, n)
        except Exception as exc:  # noqa: BLE001 - one broken case must not hide the others
            rec = {"case": case[0], "verb": case[1], "fault": case[2], "error": f"{type(exc).__name__}: {exc}",
                   "trace": traceback.format_exc()[-3000:], "consistent": False, "why": "the case itself failed"}
            try:
                if LAST_INJ is not None:
                    clear(LAST_INJ)
                clear({"what": "any", "how": "kill", "pids": []})  # up: restarts anything killed
            except Exception:  # noqa: BLE001
                pass
        rec["case_s"] = round(time.monotonic() - t, 1)
        LAST_INJ = None
        out["cases"].append(rec)
        result_path.write_text(json.dumps(out, indent=1))
        log(f"  -> {rec.get('outcome')} detect {rec.get('detect_s')} s, recover {rec.get('recover_s')} s, "
            f"orphans {rec.get('orphans_before')} -> {rec.get('orphans_after')}: {rec.get('why')}")


if __name__ == "__main__":
    main()
