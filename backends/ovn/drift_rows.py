"""NB rows the drift check reads that the model's snapshot (:func:`.connection.read`) does not
carry: floating IPs with the port they were made for (the ``logical_port`` column, set by
``ovn-nbctl lr-nat-add … LPORT MAC`` for a distributed floating IP, or virtdeck's
``virtdeck:port`` tag). Reads the replica under the connection lock; no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from .names import EXT_NAME, EXT_PORT, EXT_TENANT, EXT_VM


@dataclass(frozen=True)
class Fip:
    """One ``dnat_and_snat`` NAT row: its router (``router_uuid``, ``router`` = the NB name,
    ``label``/``tenant`` virtdeck's tags), ``uuid``, ``external_ip``, ``logical_ip``, ``port``
    (the LSP it is for: ``logical_port``, else the ``virtdeck:port`` tag; None when neither),
    ``vm`` (the ``virtdeck:vm`` tag)."""

    router_uuid: str
    router: str
    label: str | None
    tenant: str | None
    uuid: str
    external_ip: str
    logical_ip: str
    port: str | None
    vm: str | None


def fips(nb) -> list[Fip]:
    """Every floating IP (``dnat_and_snat``) of every router in ``nb``'s replica."""
    out: list[Fip] = []
    with nb.ovsdb_connection.lock:
        for lr in nb.tables["Logical_Router"].rows.values():
            for n in lr.nat:
                if n.type != "dnat_and_snat":
                    continue
                lport = n.logical_port[0] if getattr(n, "logical_port", None) else None
                out.append(Fip(str(lr.uuid), lr.name, lr.external_ids.get(EXT_NAME),
                               lr.external_ids.get(EXT_TENANT), str(n.uuid), n.external_ip,
                               n.logical_ip, lport or n.external_ids.get(EXT_PORT),
                               n.external_ids.get(EXT_VM)))
    return out


def lsp_names(nb) -> set[str]:
    """The name of every Logical_Switch_Port in ``nb``'s replica."""
    with nb.ovsdb_connection.lock:
        return {p.name for p in nb.tables["Logical_Switch_Port"].rows.values()}
