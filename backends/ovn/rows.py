"""What every OVN NB module here shares: the checked transaction, replica row reads, and
:class:`NotFound`.

A mutating function is ONE transaction (``check_error=True``, ``may_exist``/``if_exists`` for
idempotence); called inside an outer ``with api.transaction(check_error=True)`` on the same
thread it joins that transaction instead (ovsdbapp nests transactions per thread), which lets a
module add, say, a VM port and its security-group membership in one commit. A transaction that
timed out may still commit later: callers that must clean up pass their own row names.

Errors: a failed transaction raises :class:`HostError` ("OVN NB: … failed: …"); a lookup of
something that is not there raises :class:`NotFound` (a VirtdeckError, exit code 6).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

from ...console.errors import HostError, VirtdeckError
from .names import EXT_ROLE, EXT_TENANT, is_virtdeck_key


class NotFound(VirtdeckError):
    """A network, router, security group or port virtdeck looked for is not in OVN NB."""

    exit_code = 6


@contextmanager
def checked_txn(api, what: str) -> Iterator:
    """One checked transaction; ovsdbapp/OVSDB failures become HostError naming ``what``."""
    try:
        with api.transaction(check_error=True) as txn:
            yield txn
    except VirtdeckError:
        raise
    except Exception as exc:  # ovsdbapp raises RuntimeError, TimeoutException, …
        raise HostError(f"OVN NB: {what} failed: {exc}") from exc


def all_rows(api, table: str) -> list:
    """Every row of NB ``table`` in the IDL replica (no round trip)."""
    return list(api.tables[table].rows.values())


def ext_of(row) -> dict:
    """A row's ``external_ids`` as a plain dict (empty when the row has none)."""
    return dict(getattr(row, "external_ids", {}) or {})


def one(value):
    """Optional OVSDB column (list of 0/1) -> value or None."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def owned(row, tenant: str | None = None, role: str | None = None) -> bool:
    """True when virtdeck made ``row`` (it has a role), of ``tenant`` and ``role`` if given."""
    e = ext_of(row)
    if EXT_ROLE not in e:
        return False
    if tenant is not None and e.get(EXT_TENANT) != tenant:
        return False
    return role is None or e.get(EXT_ROLE) == role


def virtdeck_rows(api, tenants: Iterable[str] | None = None) -> dict[str, list[str]]:
    """Every NB row whose external_ids carry a ``virtdeck:`` key: {table: [uuid, …]}; with
    ``tenants``, only rows whose ``virtdeck:tenant`` is one of them (a shared NB).

    Tables without an external_ids column are skipped. Used to prove a clean delete.
    """
    want = set(tenants) if tenants is not None else None
    out: dict[str, list[str]] = {}
    for table, t in api.tables.items():
        if "external_ids" not in t.columns:
            continue
        found = [str(r.uuid) for r in t.rows.values()
                 if any(is_virtdeck_key(k) for k in (r.external_ids or {}))
                 and (want is None or (r.external_ids or {}).get(EXT_TENANT) in want)]
        if found:
            out[table] = found
    return out
