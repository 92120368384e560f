"""Facts about a hypervisor that libvirt does not know: its OVS bridge mappings, over SSH.

``ovn-bridge-mappings`` (``physnet1:br-phys,physnet2:br-ex``) in the host's Open_vSwitch
``external_ids`` says which provider networks (physnets) the host can reach and through which
OVS bridge. Read with one ``ovs-vsctl`` over the host's SSH link (``Session.run``).

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
              f"if command -v gzip >/dev/null; then cat -- *.xml | gzip -1; else cat -- *.xml; fi")
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
        msg = head.strip().splitlines()
        return HostError(f"{host}: ovs-vsctl failed (rc {rc_text.strip()}): "
                         f"{msg[-1] if msg else 'no output'}"), text
    return parse_bridge_mappings(head), text
