"""Shared test set-up: real-component fixtures are plugins (fixtures_*.py beside this file); the
fixtures several test modules share are here. Helpers (plain functions, constants) live in
*_helpers.py modules; a test module never imports another test module (tests/test_layering.py).
"""

import os

import pytest

pytest_plugins = ["fixtures_real", "fixtures_lab"]  # fixtures_lab: the `lab` fixture (issue 2)

# Keep audit records of test runs out of the operator's own log.
os.environ.setdefault("VIRTDECK_AUDIT_LOG", "/tmp/virtdeck-test-audit.jsonl")


@pytest.fixture
def audit_log(tmp_path, monkeypatch):
    """The audit trail of this test: VIRTDECK_AUDIT_LOG points at ``tmp_path/audit.jsonl`` (a
    Path, maybe not created yet). Modules with their own ``audit_log`` override this one."""
    path = tmp_path / "audit.jsonl"
    monkeypatch.setenv("VIRTDECK_AUDIT_LOG", str(path))
    return path


@pytest.fixture
def api(nb_server, audit_log):
    """An ovsdbapp NB API connected to the throwaway ``nb_server`` (unix socket), audit records to
    ``audit_log``; its connection is stopped afterwards (2 s timeout)."""
    from virtdeck.backends.session import open_nb
    a = open_nb(nb_server.unix)
    yield a
    a.ovsdb_connection.stop(timeout=2)


@pytest.fixture(scope="module")
def lab_inv(lab):
    """The lab's inventory (an Inventory loaded from the shared ``lab`` fixture's TOML path;
    reuses a running lab). Module scope."""
    from virtdeck.config import inventory as inv_mod
    return inv_mod.load(lab.inventory)
