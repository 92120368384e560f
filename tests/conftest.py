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


@pytest.fixture
def ssl_isolated(monkeypatch):
    """python-ovs keeps one set of SSL files per process (backends/ovn/remote.py): a test with a
    PKI of its own starts with none in use and whatever it sets is undone afterwards, so the
    lab's (cluster-ssl: the operator's key pair, used by lab tests in the same run) and other
    modules' PKIs neither refuse it nor are disturbed by it."""
    from ovs import stream as ovs_stream
    from virtdeck.backends.ovn import remote
    monkeypatch.setattr(remote, "_ssl_in_use", None)
    for attr in ("_SSL_private_key_file", "_SSL_certificate_file", "_SSL_ca_cert_file"):
        monkeypatch.setattr(ovs_stream.Stream, attr, getattr(ovs_stream.Stream, attr))


@pytest.fixture(scope="module")
def lab_inv(lab):
    """The lab's inventory (an Inventory loaded from the shared ``lab`` fixture's TOML path;
    reuses a running lab). Module scope."""
    from virtdeck.config import inventory as inv_mod
    return inv_mod.load(lab.inventory)


# The cloud images of tests/e2e/test_cloud_images.py take minutes to build on a fresh machine
# (the arm64 one runs under qemu-user); start their builds when the session starts, one process
# per image, so they overlap the rest of the suite instead of adding to it. ensure_image's flock
# makes the test wait for a build still running; a cached image costs nothing here.
_IMAGE_TESTS = "tests/e2e/test_cloud_images.py"
_image_builds: list = []


@pytest.hookimpl(trylast=True)  # after -m/-k deselection
def pytest_collection_modifyitems(session, config, items):
    """Start background builds of the uncached cloud images when their e2e test is selected,
    and move that test to the end of the run."""
    if os.environ.get("VIRTDECK_NO_IMAGE_PREBUILD") or config.option.collectonly:
        return
    image_items = [item for item in items if item.nodeid.startswith(_IMAGE_TESTS)]
    if not image_items:
        return
    # Run them last (they would come first, tests/e2e/ sorts early): the builds get the
    # whole suite's length to finish in.
    items[:] = [item for item in items if item not in image_items] + image_items
    import subprocess
    import sys
    from virtdeck.backends.lab.image_disk import RECIPES, cached_image
    from virtdeck.backends.lab.state import image_cache_dir
    cache = image_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    for name, recipe in RECIPES.items():
        if cached_image(recipe) is None:
            log = open(cache / f"{name}.prebuild.log", "ab")
            _image_builds.append(subprocess.Popen(
                [sys.executable, "-m", "virtdeck.backends.lab.image_disk", name],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True))


def pytest_sessionfinish(session, exitstatus):
    """Stop a background image build the session no longer needs (its own process group)."""
    import signal
    for proc in _image_builds:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)
