"""``virtdeck host add | disable | enable | remove``: the inventory's hosts, changed by verbs.

Each writes the inventory file the session was opened on (``session.inventory.path``) with
tomli-w after copying the old file to ``FILE.bak`` (:func:`config.inventory.save_with_backup`;
tomli-w keeps no comments, the backup does), and replaces ``session.inventory`` so that the
rest of this process (the console's placement) sees the change at once. Every one is a
mutating verb (read-only guard, one audit record ``host.<verb>``).

Maintenance is the inventory's ``enabled = false`` with a ``disabled_reason``: placement refuses
the host naming the reason, the Hosts panel shows it ``disabled``, and the console does not
connect to it; verbs that name the host (``host drain``, ``vm move --host``) still reach it.
"""

from __future__ import annotations

from dataclasses import replace

from ...config import inventory as inventory_mod
from ...config.inventory import HostConfig
from ..errors import AlreadyExists, ConfigError, ConflictError, ExitCode, HostError
from . import host_check
from . import verb as verb_frame


class HostCheckFailed(HostError):
    """``host add`` refused: the preflight has fail lines. ``result``: the check (as
    :func:`host_check.check` returns it), for the caller to print."""

    exit_code = ExitCode.FAILED  # the host answered; the check says what fails

    def __init__(self, name: str, result: dict):
        fails = [f"{line['fact']}" for h in result["hosts"] for line in h["lines"] if line["status"] == "fail"]
        super().__init__(f"{name} failed the host check ({', '.join(fails)}); the inventory is unchanged: "
                         f"fix what the check says, or add it anyway with --force")
        self.result = result


def _write(session, inv) -> dict:
    """Validate ``inv`` as a file would be (ConfigError), write it with a backup, adopt it."""
    path = session.inventory.path
    if path is None:
        raise ConfigError("the inventory was not read from a file; nothing to write to")
    checked = inventory_mod.parse(inventory_mod.to_dict(inv), path)  # the same checks as a load
    written, backup = inventory_mod.save_with_backup(checked, path)
    session.inventory = inventory_mod.load(written)
    return {"written": str(written), "backup": str(backup) if backup else None}


def add(session, name: str, address: str, *, user: str | None = None, port: int | None = None,
        pool: str | None = None, create_pool: str | None = None, force: bool = False,
        domain_type: str = "kvm") -> dict:
    """Add hypervisor ``name`` at ``address`` (IP, DNS name or ssh alias; ``user``/``port``
    unset: ssh_config decides) to the inventory, after :func:`host_check.check_one` passes
    (``create_pool``: create the missing pool at that path on the host first), or with ``force``.

    Returns ``{"host", "written", "backup", "forced", "check"}``. Raises ValidationError (a host
    of that name exists), ConfigError (name/address/port invalid: the inventory's own checks),
    HostCheckFailed (a fail line and no ``force``: nothing written), ReadOnlyError.
    """
    def body(run: verb_frame.VerbRun) -> dict:
        run.host = name
        inv = session.inventory
        if any(h.name == name for h in inv.hosts):
            raise AlreadyExists("name", f"the inventory already has a host named {name!r}")
        hc = HostConfig(name=name, address=address, user=user, port=port, domain_type=domain_type)
        new = inventory_mod.with_host(inv, hc)
        # validate before connecting: a bad name/address/port is one ConfigError
        inventory_mod.parse(inventory_mod.to_dict(new), inv.path or "inventory")
        from ...backends.session import Session
        with Session(new, connect_timeout=session.connect_timeout) as probe:
            lines = host_check.check_one(probe, name, host_check.pools_of(new, pool), create_pool)
        result = {"ok": host_check.worst(lines) != "fail",
                  "hosts": [{"host": name, "status": host_check.worst(lines),
                             "lines": [line.as_dict() for line in lines]}]}
        run.note(address=address, check=result["hosts"][0]["status"], forced=force and not result["ok"])
        if not result["ok"] and not force:
            run.failure = "failed: the host check has fail lines (not written)"
            raise HostCheckFailed(name, result)
        return {"host": name, **_write(session, new), "forced": not result["ok"], "check": result}
    return verb_frame.run("host.add", f"host {name}", body)


def _set_enabled(session, name: str, enabled: bool, reason: str | None, verb: str) -> dict:
    def body(run: verb_frame.VerbRun) -> dict:
        run.host = name
        hc = session.inventory.host(name)
        want = replace(hc, enabled=enabled, disabled_reason=None if enabled else (reason or "maintenance"))
        out = {"host": name, "enabled": enabled, "reason": want.disabled_reason}
        run.note(reason=want.disabled_reason)
        if want == hc:
            run.outcome = "noop"
            return {**out, "outcome": "noop", "written": None, "backup": None}
        return {**out, "outcome": "ok", **_write(session, inventory_mod.with_host(session.inventory, want))}
    return verb_frame.run(verb, f"host {name}", body)


def disable(session, name: str, reason: str | None = None) -> dict:
    """Put host ``name`` in maintenance: ``enabled = false`` and ``disabled_reason = reason``
    (default "maintenance") in the inventory. Placement then refuses it with that reason.
    Returns ``{"host", "enabled", "reason", "outcome" (ok | noop), "written", "backup"}``.
    Raises ConfigError (no such host), ReadOnlyError."""
    return _set_enabled(session, name, False, reason, "host.disable")


def enable(session, name: str) -> dict:
    """Take host ``name`` out of maintenance (``enabled = true``, reason cleared); as
    :func:`disable`."""
    return _set_enabled(session, name, True, None, "host.enable")


def remove(session, name: str, force: bool = False) -> dict:
    """Remove host ``name`` from the inventory — refused while any domain (running or not) is
    defined on it, or while OVN NB is reached through it (``[ovn] via_host``). A hypervisor
    that does not answer is refused too (what lives there is unknown) unless ``force``.

    Returns ``{"host", "written", "backup"}``. Raises ConflictError (VMs there; via_host: exit 4),
    HostError (unreachable, no ``force``), ConfigError (no such host), ReadOnlyError.
    """
    def body(run: verb_frame.VerbRun) -> dict:
        from ...backends import domains
        run.host = name
        inv = session.inventory
        hc = inv.host(name)
        if inv.ovn.via_host == name:
            raise ConflictError(f"{name} carries the OVN northbound ([ovn] via_host); point via_host "
                                f"elsewhere first")
        if hc.hypervisor:
            try:
                vms = domains.list_vms(session.libvirt(name), name)
            except HostError as exc:
                if not force:
                    raise HostError(f"{exc}; cannot see what runs on {name}: pass --force to remove it "
                                    f"anyway") from None
                vms = []
            if vms:
                listed = ", ".join(f"{v.name} ({v.state})" for v in vms)
                raise ConflictError(f"{name} still holds {len(vms)} VM(s): {listed}; move or delete them "
                                    f"first (virtdeck host drain {name})")
        session.drop(name)
        return {"host": name, **_write(session, replace(inv, hosts=tuple(h for h in inv.hosts if h.name != name)))}
    return verb_frame.run("host.remove", f"host {name}", body)
