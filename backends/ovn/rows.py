"""What every OVN NB module here shares: the checked transaction, replica row reads, and
:class:`NotFound`.

A mutating function is ONE transaction (``check_error=True``, ``may_exist``/``if_exists`` for
idempotence); called inside an outer ``with api.transaction(check_error=True)`` on the same
thread it joins that transaction instead (ovsdbapp nests transactions per thread), which lets a
module add, say, a VM port and its security-group membership in one commit. A transaction that
timed out may still commit later: callers that must clean up pass their own row names.

Re-read before retry (:class:`RereadTransaction`): ovsdbapp re-runs a transaction's commands
when python-ovs answers TRY_AGAIN — which it also does for a transaction already SENT when the
connection dropped (the leader died): that one may have committed. ``may_exist``/``if_exists``
commands re-check the fresh replica and are safe; a plain insert (a DHCP_Options, NAT or static
route row has no unique name) would be made twice. Such a transaction passes ``done``, a
predicate on the replica saying "my effect is already there"; it is evaluated before every
attempt, the first included (a caller retrying after a TimeoutException, whose first attempt
is still queued or committed meanwhile, is caught the same way), and when true the attempt is
skipped and the transaction counts as committed.

Errors: a failed transaction raises :class:`HostError` ("OVN northbound on central: … failed:
…", the place from :func:`label`); a lookup of something that is not there raises
:class:`NotFound` (a VirtdeckError, exit code 3). :func:`describe` words ovsdbapp/python-ovs
exceptions for an operator: no command repr, no ``UUID('…')``, no private socket path.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

from ovsdbapp.backend.ovs_idl import transaction as ovs_txn

from ...console.errors import ExitCode, HostError, VirtdeckError
from .names import EXT_ROLE, EXT_TENANT, is_virtdeck_key


class NotFound(VirtdeckError):
    """A network, router, security group or port virtdeck looked for is not in OVN NB."""

    exit_code = ExitCode.NOT_FOUND


log = logging.getLogger(__name__)


class _AlreadyDone(Exception):
    """Raised from ``pre_commit`` when ``done()`` holds: skip this attempt."""


class RereadTransaction(ovs_txn.Transaction):
    """An ovsdbapp transaction that re-reads the replica before each attempt (see the module
    docstring). ``done``: a no-argument predicate over the IDL replica, run in the connection
    thread (which owns the replica) before each attempt; None keeps ovsdbapp's behaviour.
    ``skipped`` counts attempts skipped because ``done()`` held (0 or 1)."""

    def __init__(self, api, ovsdb_connection, timeout=None, check_error=False, log_errors=True,
                 done: Callable[[], bool] | None = None):
        super().__init__(api, ovsdb_connection, timeout=timeout, check_error=check_error,
                         log_errors=log_errors)
        self.done = done
        self.skipped = 0

    def pre_commit(self, txn):
        """ovsdbapp calls this at the start of every attempt, before the commands run."""
        if self.done is not None and self.done():
            raise _AlreadyDone()

    def do_commit(self):
        """ovsdbapp's attempt loop; an attempt whose effect ``done()`` finds is not made."""
        try:
            return super().do_commit()
        except _AlreadyDone:  # ovsdbapp aborted the idl.Transaction before re-raising
            self.skipped += 1
            log.info("OVN NB: transaction already committed, not repeated: %s", self)
            return [None for _ in self.commands]


@contextmanager
def checked_txn(api, what: str, done: Callable[[], bool] | None = None) -> Iterator:
    """One checked transaction; ovsdbapp/OVSDB failures become HostError naming ``what``.

    ``done``: for a transaction with a plain insert, a predicate over the replica that is true
    once the transaction's effect is there (see :class:`RereadTransaction`); it must be cheap
    and must not start a transaction. Ignored when the call joins an outer transaction (the
    outer one's ``done`` applies) or when ``api`` does not make RereadTransactions.
    """
    kwargs = {"done": done} if done is not None and _rereads(api) else {}
    try:
        with api.transaction(check_error=True, **kwargs) as txn:
            yield txn
    except VirtdeckError:
        raise
    except Exception as exc:  # ovsdbapp raises RuntimeError, TimeoutException, …
        raise HostError(f"OVN northbound on {label(api)}: {what} failed: {describe(exc)}") from None


#: ``api.virtdeck_label``: where the NB is, as the operator knows it (the inventory's via_host
#: name or connection string), set by whoever opened the connection; never a forwarded socket.
LABEL_ATTR = "virtdeck_label"


def label(api) -> str:
    """Where ``api``'s NB is for an error message ("central", "tcp:10.0.0.2:6641"), or
    "its configured address" when the opener did not say."""
    return getattr(api, LABEL_ATTR, None) or "its configured address"


# ovsdbapp's Command.__repr__ lists every attribute (several hundred characters for lsp_add)
_COMMAND_RE = re.compile(r"<?\b([A-Z][A-Za-z0-9]*?)Command\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)>?")
_COMMAND_OBJ_RE = re.compile(r"<[\w.]*?\.([A-Z][A-Za-z0-9]*?)Command object at 0x[0-9a-f]+>")
_UUID_RE = re.compile(r"UUID\('([0-9a-fA-F-]{36})'\)")
_FWD_RE = re.compile(r"(unix:)?/[^\s,:]*virtdeck-fwd-[^\s,:]*")
_TIMEOUT_RE = re.compile(r"exceeded timeout (\d+(?:\.\d+)?) seconds")
MAX_TEXT = 240


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()


def describe(exc: BaseException) -> str:
    """``exc`` (from ovsdbapp or python-ovs) as operator text, one line, at most
    :data:`MAX_TEXT` characters: a transaction timeout says how long it waited and that the
    change may still be applied; a row that vanished says which; command reprs become their
    ovsdbapp verb (``lsp_add``), ``UUID('…')`` the bare UUID, a forwarded socket path "the
    forwarded NB socket". A KeyError of a UUID (a row deleted while the transaction ran)
    becomes "a row it refers to (UUID) was deleted meanwhile"."""
    name = type(exc).__name__
    text = str(exc)
    if name == "TimeoutException" or _TIMEOUT_RE.search(text):
        m = _TIMEOUT_RE.search(text)
        waited = f" within {float(m.group(1)):g} s" if m else " in time"
        return f"no answer{waited}; the change may still be applied once it answers"
    if isinstance(exc, KeyError) and exc.args:
        key = _UUID_RE.sub(r"\1", repr(exc.args[0])).strip("'")
        return f"a row it refers to ({key}) was deleted meanwhile; try again"
    if text.startswith("Could not retrieve schema"):
        return "no answer (no database schema came back; is ovsdb-server running there?)"
    text = _COMMAND_OBJ_RE.sub(lambda m: _snake(m.group(1)), text)
    text = _COMMAND_RE.sub(lambda m: _snake(m.group(1)), text)
    text = _UUID_RE.sub(r"\1", text)
    text = _FWD_RE.sub("the forwarded NB socket", text)
    text = " ".join(text.split()) or name
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "…"


def _rereads(api) -> bool:
    """True when ``api`` builds :class:`RereadTransaction` (connection.api_class does)."""
    return bool(getattr(api, "rereads_before_retry", False))


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
