"""Deleting from the Networks panel: ``D`` / ``delete`` on a network or a router row.

:func:`delete_from_networks_panel` is called by the main screen with the highlighted row's model
object (``console.model.Network`` or ``Router``). It asks first (ConfirmDialog listing what
goes: for a network its VM ports and attached routers — the cascade — and for a router its
ports and NAT rules), then runs ``console.services.network.delete_network(cascade=True)`` /
``console.services.router.delete_router`` in a thread worker and reports one notification.
The panel follows through the live model. This module imports no ovsdbapp, libvirt or asyncssh.
"""

from __future__ import annotations

from ..console.services import network as netsvc
from ..console.services import router as rsvc
from .form import error_parts


def delete_from_networks_panel(screen, kind: str, obj) -> None:
    """Confirm and delete network / router ``obj`` (``kind`` "net" or "router") of its tenant."""
    from .vm_actions import ConfirmDialog

    app = screen.app
    if app.readonly:
        app.notify("read-only console: nothing can be deleted", severity="warning")
        return
    tenant, name = obj.tenant, obj.display_name
    if not tenant:
        app.notify(f"{obj.name} is not a virtdeck object (no virtdeck:tenant); left alone", severity="warning")
        return
    session = app.session
    if session is None:
        app.notify("not connected to OVN northbound", severity="error")
        return
    cloud = app.cloud
    if kind == "net":
        ports = [p for p in cloud.ports_of(obj.name)]
        vm_ports = [p for p in ports if p.type == ""]
        routers = sorted({p.router if p.router is not None else "?" for p in ports if p.type == "router"})
        targets = [f"network {tenant}/{name} ({obj.subnet or '-'})"]
        targets += [f"  VM port {p.vm or p.name[:8]} {','.join(p.ips)}" for p in vm_ports]
        targets += [f"  router port of {r}" for r in routers]
        note = ("The cascade removes its VM ports (the VMs lose that NIC's port), their DHCP rows "
                "and router attachments." if vm_ports or routers else "")
        title = f"Delete network {tenant}/{name}?"

        def work():
            return netsvc.delete_network(session, tenant, name, cascade=True)
    else:
        targets = [f"router {tenant}/{name}"]
        targets += [f"  port {','.join(p.networks)} on {p.peer_switch or '-'}" for p in obj.ports]
        targets += [f"  NAT {n.type} {n.external_ip} ↔ {n.logical_ip}" for n in obj.nats]
        note = "The networks stay; their router ports and NAT go."
        title = f"Delete router {tenant}/{name}?"

        def work():
            return rsvc.delete_router(session, tenant, name)

    def run() -> None:
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - one line, never a traceback
            app.call_from_thread(app.notify, error_parts(exc)[0], severity="error", timeout=8)
            return
        app.call_from_thread(app.notify, f"deleted {title.split()[1]} {tenant}/{name}", timeout=4)

    def answer(yes) -> None:
        if yes:
            screen.run_worker(run, thread=True, group="net-delete")

    app.push_screen(ConfirmDialog(title, targets, note, danger=True), answer)
