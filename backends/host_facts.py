"""Facts about a hypervisor that libvirt does not know: its OVS bridge mappings, over SSH.

``ovn-bridge-mappings`` (``physnet1:br-phys,physnet2:br-ex``) in the host's Open_vSwitch
``external_ids`` says which provider networks (physnets) the host can reach and through which
OVS bridge. Read with one ``ovs-vsctl`` over the host's SSH link (``Session.run``).
"""

from __future__ import annotations

from console.errors import HostError

COMMAND = ["ovs-vsctl", "--timeout=5", "--if-exists", "get", "Open_vSwitch", ".",
           "external_ids:ovn-bridge-mappings"]


def parse_bridge_mappings(text: str) -> tuple[tuple[str, str], ...]:
    """``"physnet1:br-phys,physnet2:br-ex"`` (quotes optional) → ``(("physnet1", "br-phys"), …)``.
    Malformed items are skipped; empty text gives ``()``."""
    text = text.strip().strip('"').strip()
    out: list[tuple[str, str]] = []
    for item in text.split(","):
        physnet, sep, bridge = item.strip().partition(":")
        if sep and physnet and bridge:
            out.append((physnet.strip(), bridge.strip()))
    return tuple(out)


def bridge_mappings(session, host: str, timeout: float = 10.0) -> tuple[tuple[str, str], ...]:
    """The ``(physnet, bridge)`` pairs of ``host``'s OVS, read over SSH via ``session.run``.

    Returns ``()`` when the key is unset. Raises HostError when SSH fails or ``ovs-vsctl``
    fails (e.g. OVS not running on the host).
    """
    res = session.run(host, COMMAND, timeout=timeout)
    if not res.ok:
        msg = (res.stderr or res.stdout).strip().splitlines()
        raise HostError(f"{host}: ovs-vsctl failed (rc {res.rc}): {msg[-1] if msg else 'no output'}")
    return parse_bridge_mappings(res.stdout)
