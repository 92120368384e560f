"""Facts about a hypervisor that libvirt does not know: its OVS bridge mappings, over SSH.

``ovn-bridge-mappings`` (``physnet1:br-phys,physnet2:br-ex``) in the host's Open_vSwitch
``external_ids`` says which provider networks (physnets) the host can reach and through which
OVS bridge. Read with one ``ovs-vsctl`` over the host's SSH link (``Session.run``).

A non-root operator: ``ovs-vsctl`` needs access to OVS's database socket (root-only on a stock
Debian host); without it the error says so and how to grant it (:func:`ovs_error`). The domain
definitions in libvirt's config directory are root-only files: ``cat`` then reads nothing and
the caller falls back to the libvirt API (``XMLDesc``; :func:`backends.hypervisor.list_domains`).

At start-up the console reads them in the same SSH command as the domain definitions
(:func:`mappings_and_definitions`): on the busy lab machine each SSH exec costs 0.15-0.4 s, and
two at once per host made the definitions arrive ~2x later (measured: 2 hosts x (cat + ovs-vsctl)
~500 ms, 2 hosts x cat ~260 ms).
"""

from __future__ import annotations

import gzip
import shlex
import zlib

from ..console.errors import HostError
from .domain_facts import CONFIG_FILTER

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


OVS_SOCKET = "/run/openvswitch/db.sock"


def ovs_error(host: str, rc: str | int, output: str) -> HostError:
    """The HostError for a failed ``ovs-vsctl`` (``output``: what it printed): a permission
    problem names the socket and the fix, anything else the last line of the output."""
    msg = output.strip().splitlines()
    last = msg[-1] if msg else "no output"
    if "ermission denied" in output:
        return HostError(f"{host}: the operator may not read the OVS database ({OVS_SOCKET}: "
                         f"permission denied), so its bridge mappings are unknown; fix on {host}: "
                         f"give the operator's group read/write access to {OVS_SOCKET} "
                         f"(or run virtdeck as a user that has it)")
    return HostError(f"{host}: ovs-vsctl failed (rc {rc}): {last}")


def bridge_mappings(session, host: str, timeout: float = 10.0) -> tuple[tuple[str, str], ...]:
    """The ``(physnet, bridge)`` pairs of ``host``'s OVS, read over SSH via ``session.run``.

    Returns ``()`` when the key is unset. Raises HostError when SSH fails or ``ovs-vsctl``
    fails (e.g. OVS not running on the host).
    """
    res = session.run(host, COMMAND, timeout=timeout)
    if not res.ok:
        raise ovs_error(host, res.rc, res.stderr or res.stdout)
    return parse_bridge_mappings(res.stdout)


_MARK = "@@virtdeck-ovs-rc="


def mappings_and_definitions(session, host: str, config_dir: str,
                             timeout: float = 60.0) -> tuple[tuple[tuple[str, str], ...] | HostError, str]:
    """ONE SSH command: ``host``'s bridge mappings (as :func:`bridge_mappings`) and the text of
    every libvirt domain definition in ``config_dir`` (``cat`` of its ``*.xml``, for
    :func:`backends.hypervisor.parse_config_text`).

    Returns ``(mappings, text)``; ``mappings`` is a HostError (not raised) when ``ovs-vsctl``
    failed, ``text`` is "" when the definitions cannot be read. Raises HostError when SSH fails.
    (A hung OVS database delays the definitions by ``ovs-vsctl --timeout`` = 5 s at most.)

    The definitions come gzip'ed (``gzip -1``; plain when the host has no gzip): ~1.6 MB of
    XML per 1,000 domains shrinks ~10x, which this process then neither decrypts nor decodes
    in SSH-packet-sized pieces.
    """
    script = (f"{shlex.join(COMMAND)} 2>&1; rc=$?; echo; echo \"{_MARK}$rc\"; "
              f"cd {shlex.quote(config_dir)} 2>/dev/null || exit 0; "
              f"if command -v gzip >/dev/null; then cat -- *.xml | {CONFIG_FILTER} | gzip -1; "
              f"else cat -- *.xml | {CONFIG_FILTER}; fi")
    res = session.run(host, ["sh", "-c", script], timeout=timeout, binary=True)
    out = res.stdout or b""
    head_b, sep, rest = out.partition(b"\n" + _MARK.encode())
    head = head_b.decode("utf-8", "replace")
    if not sep:
        return HostError(f"{host}: bridge mappings: no answer (rc {res.rc})"), ""
    rc_b, _, data = rest.partition(b"\n")
    rc_text = rc_b.decode("ascii", "replace")
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            data = b""
    text = data.decode("utf-8", "replace")
    if rc_text.strip() != "0":
        return ovs_error(host, rc_text.strip(), head), text
    return parse_bridge_mappings(head), text


def guest_arches(conn, host: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Guest arches ``host``'s libvirt can run and the domain types for each, from its
    capabilities (``<guest><arch name><domain type>``): ``(("x86_64", ("qemu", "kvm")),
    ("aarch64", ("qemu",)))``. 'kvm' = hardware-assisted, 'qemu' = TCG (emulated: for a
    foreign arch, the only way). Raises HostError when libvirt does not answer."""
    import xml.etree.ElementTree as ET

    import libvirt
    try:
        caps = ET.fromstring(conn.getCapabilities())
    except libvirt.libvirtError as exc:
        raise HostError(f"{host}: capabilities: {exc.get_error_message()}") from None
    out: dict[str, list[str]] = {}
    for arch in caps.findall("guest/arch"):
        types = out.setdefault(arch.get("name") or "?", [])
        types += [d.get("type") for d in arch.findall("domain") if d.get("type") and d.get("type") not in types]
    return tuple((a, tuple(t)) for a, t in out.items())
