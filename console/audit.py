"""Append-only audit trail: one JSON line per mutating verb (time, operator, verb, target, outcome).

The file is ``$XDG_STATE_HOME/virtdeck/audit.jsonl`` unless ``$VIRTDECK_AUDIT_LOG`` names another.
Callers must never pass secrets: keys named like a secret are refused outright, so a clear-text
password cannot reach the log by accident.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config.paths import state_dir

_lock = threading.Lock()
_SECRET_WORDS = ("password", "passwd", "secret", "private_key", "token")


def log_path() -> Path:
    """Where audit records go."""
    env = os.environ.get("VIRTDECK_AUDIT_LOG")
    return Path(env) if env else state_dir() / "audit.jsonl"


def operator() -> str:
    """Who acts: ``$VIRTDECK_OPERATOR`` or the login name, with the jump host's name."""
    who = os.environ.get("VIRTDECK_OPERATOR") or getpass.getuser()
    return f"{who}@{socket.gethostname()}"


def record(verb: str, target: str, outcome: str, **details: Any) -> dict:
    """Append one record and return it.

    ``verb``: e.g. "vm.create"; ``target``: what it acted on, e.g. "vm demo/web1";
    ``outcome``: "ok", "noop" or "failed: <reason>"; ``details``: JSON-serialisable facts
    (never secrets — a key containing password/secret/token raises ValueError).
    """
    for key in details:
        if any(w in key.lower() for w in _SECRET_WORDS) and not key.lower().endswith("_hash"):
            raise ValueError(f"audit detail {key!r} looks like a secret; pass a hash or leave it out")
    rec = {
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "operator": operator(),
        "verb": verb,
        "target": target,
        "outcome": outcome,
    }
    if details:
        rec["details"] = details
    path = log_path()
    line = json.dumps(rec, sort_keys=False, default=str) + "\n"
    with _lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND keeps concurrent writers (two consoles) from interleaving within a line.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    return rec
