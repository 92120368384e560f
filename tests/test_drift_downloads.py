"""Abandoned `template add --url` partials in the drift check, on the lab: a partial file nobody
writes and untouched for more than a day is a ``download-orphan`` (safe: ``--fix`` deletes it);
a young partial (kept for a resume) and an old one a live curl still writes are not findings,
and the fix leaves both. The files are made from outside (in the host, as a killed download
leaves them: ``.<volume>.<sha256[:16]>.part`` beside its PID file in the pool's directory).
"""

from __future__ import annotations

import uuid

import pytest

from virtdeck.backends import download
from virtdeck.console.services import drift
from provision_helpers import lab_inventory, lab_session  # noqa: F401 (fixtures)

pytestmark = pytest.mark.lab

TAG = f"dd{uuid.uuid4().hex[:5]}"
HOST = "hv1"


def _part(directory: str, what: str) -> str:
    return download.partial_path(directory, f"{TAG}{what}.qcow2", uuid.uuid4().hex * 2)


@pytest.fixture
def partials(lab, lab_session):
    """Three partials on hv1: old and abandoned, young, old but written by a live process."""
    conn = lab_session.libvirt(HOST)
    d = download.pool_dir(conn, HOST, "virtdeck")
    old, young, busy = _part(d, "old"), _part(d, "young"), _part(d, "busy")
    writer = lab.run_in(HOST, ["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"]).stdout.strip()
    lab.run_in(HOST, ["sh", "-c", f"head -c 1048576 /dev/zero > {old} && cp {old} {young} && cp {old} {busy} "
                                  f"&& echo {writer} > {busy}.pid && touch -d '2 days ago' {old} {busy}"])
    yield {"old": old, "young": young, "busy": busy}
    lab.run_in(HOST, ["sh", "-c", f"kill {writer}; rm -f {old} {young} {busy} {busy}.pid"], check=False)


def mine(report) -> list:
    return [f for f in report["_findings"] if TAG in f.subject]


def test_an_abandoned_partial_is_found_and_fixed_the_others_kept(partials, lab, lab_session):
    rep = drift.check(lab_session, "host", HOST)
    found = mine(rep)
    assert [(f.kind, f.target["path"]) for f in found] == [("download-orphan", partials["old"])], \
        [f.subject for f in found]
    (f,) = found
    assert f.safe and f.host == HOST and "1 MiB" in f.detail and "2.0 days" in f.detail
    assert "delete the file" in f.fix
    res = drift.fix(lab_session, dict(rep, _findings=found))
    assert res["removed"] == [f.subject] and res["failed"] == [], res
    left = lab.run_in(HOST, ["sh", "-c", f"ls -a {partials['old'].rsplit('/', 1)[0]}"]).stdout.split()
    names = {k: p.rsplit("/", 1)[1] for k, p in partials.items()}
    assert names["old"] not in left and names["young"] in left and names["busy"] in left


def test_a_partial_being_written_is_not_removed(partials, lab_session):
    with pytest.raises(Exception, match="a download is writing it"):
        download.remove_partial(lab_session, HOST, partials["busy"])
