"""``virtdeck audit``: read the audit trail (console/audit.py writes it), filtered.

Read-only. Records are the JSON lines of :func:`console.audit.log_path` (``time`` ISO-8601 UTC,
``operator`` ``who@jumphost``, ``verb`` ``vm.create``, ``target`` ``vm demo/web1``,
``outcome``, ``details``). A line that is not valid JSON is skipped and counted.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..errors import ValidationError

_REL = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(text: str, field: str, now: datetime | None = None) -> datetime:
    """``text`` as an aware UTC datetime: ISO-8601 (``2026-11-28``, ``2026-11-28T12:00``,
    with or without an offset; no offset = UTC) or an age (``30m``, ``2h``, ``7d``: that long
    before ``now``). Raises ValidationError naming ``field``."""
    now = now or datetime.now(timezone.utc)
    m = _REL.match(text.strip())
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    try:
        t = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(field, f"{text!r} is not a time: give ISO-8601 (2026-11-28T12:00, UTC unless "
                                     f"an offset is given) or an age like 30m, 2h, 7d") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _verb_matches(want: str, verb: str) -> bool:
    want = want.strip().replace(" ", ".")
    return verb == want or verb.startswith(want + ".")


def _operator_matches(want: str, op: str) -> bool:
    return op == want or op.split("@", 1)[0] == want


def read(path: Path | None = None, operator: str | None = None, verb: str | None = None,
         target: str | None = None, since: str | None = None, until: str | None = None,
         limit: int | None = None) -> dict:
    """The matching records, oldest first.

    Filters (all optional, combined with AND): ``operator`` — ``who@host`` or just ``who``;
    ``verb`` — ``vm.create``, ``vm create`` or a group (``vm``, ``router``); ``target`` — a
    substring of the target (``web1``); ``since``/``until`` — see :func:`parse_time` (until is
    exclusive); ``limit`` — keep only the last N. Returns ``{"path", "records": [...],
    "skipped": N (unreadable lines)}``; a missing file gives no records. Raises ValidationError
    (a bad time or limit)."""
    from ..audit import log_path
    path = Path(path) if path else log_path()
    lo = parse_time(since, "--since") if since else None
    hi = parse_time(until, "--until") if until else None
    if limit is not None and limit < 1:
        raise ValidationError("--limit", f"{limit} is not allowed: give a whole number of records, 1 or more")
    out: list[dict] = []
    skipped = 0
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = ""
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            when = datetime.fromisoformat(rec["time"])
        except (ValueError, KeyError, TypeError):
            skipped += 1
            continue
        if operator and not _operator_matches(operator, rec.get("operator", "")):
            continue
        if verb and not _verb_matches(verb, rec.get("verb", "")):
            continue
        if target and target not in rec.get("target", ""):
            continue
        if lo and when < lo or hi and when >= hi:
            continue
        out.append(rec)
    if limit:
        out = out[-limit:]
    return {"path": str(path), "records": out, "skipped": skipped}
