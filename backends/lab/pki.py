"""The lab's PKI for the cluster-ssl OVN flavour, made with ``ovs-pki`` (openvswitch-common).

Layout, in the lab dir (``pki/``, kept across `lab down` like the SSH host keys, so a rebuilt
lab keeps its identity and an operator's copied client certificate stays valid)::

    pki/ca/controllerca/cacert.pem   CA that signs the servers (the central members)
    pki/ca/switchca/cacert.pem       CA that signs the clients (hypervisors, the operator)
    pki/cacert.pem                   both CA certificates in one file: every party's ``ca_cert``
    pki/<name>-privkey.pem, pki/<name>-cert.pem   one key pair per party

Parties: ``central-1`` … ``central-3`` (type ``controller``: one server certificate per raft
member, also used as the member's client certificate towards its peers and by its ovn-northd),
``operator`` (the client certificate the lab's inventory names) and ``hv1`` … ``hv4`` (type
``switch``: each hypervisor's ovn-controller). RSA 2048 (ovs-pki's default); measured here:
``init`` ~0.3 s, each ``req+sign`` ~0.2 s one after another (the key generation, run in
parallel here); later `lab up`s make nothing (only missing pairs are made).

Public API: :func:`ensure` ``(names) -> dict[name, Pair]``, :func:`pair` ``(name) -> Pair``,
:func:`ca_bundle` ``() -> Path``. Raises :class:`state.LabError` (one line naming the command
and its log) when ovs-pki fails.
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from .state import LabError, lab_dir, write_file

SERVER = "controller"   # ovs-pki type for the central members
CLIENT = "switch"       # ovs-pki type for hypervisors and the operator
_lock = threading.Lock()  # `lab up` starts hosts in threads; ovs-pki's CA index is one file


@dataclass(frozen=True)
class Pair:
    """One party's PEM files: ``key`` (private key) and ``cert`` (signed certificate)."""

    key: Path
    cert: Path


def pki_dir() -> Path:
    """``<lab dir>/pki``."""
    return lab_dir() / "pki"


def ca_bundle() -> Path:
    """The CA file every party trusts (controllerca + switchca certificates)."""
    return pki_dir() / "cacert.pem"


def pair(name: str) -> Pair:
    """Where ``name``'s key and certificate are (whether made yet or not)."""
    d = pki_dir()
    return Pair(d / f"{name}-privkey.pem", d / f"{name}-cert.pem")


def kind(name: str) -> str:
    """``controller`` for a central member (``central-N``), ``switch`` for everyone else."""
    return SERVER if name.startswith("central") else CLIENT


def _ovs_pki(*args: str) -> None:
    d = pki_dir()
    argv = ["ovs-pki", f"--dir={d / 'ca'}", f"--log={d / 'ovs-pki.log'}", "--batch", *args]
    try:
        p = subprocess.run(argv, cwd=d, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"ovs-pki {args[0]} failed ({exc}); see {d / 'ovs-pki.log'}") from None
    if p.returncode != 0:
        err = (p.stderr or p.stdout).strip().splitlines()
        raise LabError(f"ovs-pki {' '.join(args)} failed: {err[-1] if err else p.returncode} "
                       f"(log: {d / 'ovs-pki.log'})")


def ensure(names: list[str]) -> dict[str, Pair]:
    """Make the CAs (once) and a key pair for each of ``names`` that has none; returns
    {name: Pair}. A half-made pair (key without certificate) is made again."""
    with _lock:
        return _ensure(names)


def _ensure(names: list[str]) -> dict[str, Pair]:
    d = pki_dir()
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    cas = [d / "ca" / "controllerca" / "cacert.pem", d / "ca" / "switchca" / "cacert.pem"]
    if not all(c.exists() for c in cas):
        if (d / "ca").exists():  # an init that did not finish: ovs-pki refuses a second init
            import shutil
            shutil.rmtree(d / "ca")
        _ovs_pki("init")
    bundle = "".join(c.read_text() for c in cas)
    if not ca_bundle().exists() or ca_bundle().read_text() != bundle:
        write_file(ca_bundle(), bundle)
    todo = []
    for name in names:
        p = pair(name)
        if not (p.key.exists() and p.cert.exists() and p.cert.stat().st_size > 0):
            for f in (p.key, p.cert, d / f"{name}-req.pem"):
                f.unlink(missing_ok=True)
            todo.append(name)
    # The RSA key generation (`req`) is the cost and needs no CA: in parallel. `sign` writes
    # the CA's index and serial: one at a time.
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=4) as ex:
        list(ex.map(lambda name: _ovs_pki("req", name), todo))
    for name in todo:
        _ovs_pki("sign", name, kind(name))
    return {name: pair(name) for name in names}
