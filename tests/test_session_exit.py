"""A virDomain still referenced after Session.close() must not hang the process at exit (lab).

The cause (backends/session.py _close_link): the libvirt connection stays open while a domain
object holds a reference; freeing the last one at interpreter exit sends CONNECT_CLOSE over the
forwarded socket and waits with no timeout — forever, when the socket's other end (asyncssh, in
this process) was still open but no longer served. Session.close() now waits until asyncssh has
closed the forward's local ends, so that RPC meets EOF at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from virtdeck.backends import domain_xml as dx
from provision_helpers import lab_inventory  # noqa: F401

pytestmark = pytest.mark.lab

ROOT = os.path.dirname(os.path.dirname(__file__))
RUNS = 4

SCRIPTS = {
    # a domain in a module global, alive until interpreter teardown
    "global": """
        DOM = conn.lookupByName(NAME)
        s.close()
    """,
    # a libvirt error's traceback (frames holding the connection and a domain) kept past close
    "traceback": """
        import libvirt
        def look(dom):
            conn.lookupByName("no-such-domain-" + dom.name())
        try:
            look(conn.lookupByName(NAME))
        except libvirt.libvirtError as exc:
            KEPT = exc
        s.close()
    """,
    # the session as a context manager, domains listed inside it
    "context": """
        s.close()
        with Session(inv) as s2:
            DOMS = s2.libvirt("hv1").listAllDomains(0)
    """,
}


@pytest.fixture(scope="module")
def held_domain(lab_inventory):
    """A defined (never started) domain on hv1 for the child processes to hold."""
    from virtdeck.backends.session import Session
    name = f"exit-{uuid.uuid4().hex[:6]}"
    with Session(lab_inventory) as s:
        conn = s.libvirt("hv1")
        conn.defineXML(dx.domain_xml(dx.DomainSpec(name, str(uuid.uuid4()), 1, 64, "/nonexistent.qcow2",
                                                   domain_type="qemu")))
    yield name
    with Session(lab_inventory) as s:
        s.libvirt("hv1").lookupByName(name).undefine()


@pytest.mark.parametrize("case", sorted(SCRIPTS))
def test_process_exits_with_a_domain_alive_after_close(lab_inventory, held_domain, case):
    code = textwrap.dedent("""
        import sys
        from virtdeck.config.inventory import load
        from virtdeck.backends.session import Session
        inv = load(sys.argv[1])
        NAME = sys.argv[2]
        s = Session(inv)
        conn = s.libvirt("hv1")
    """) + textwrap.dedent(SCRIPTS[case]) + "\nprint('done', flush=True)\n"
    # The hang was a race (whether the I/O thread closed the forward before interpreter
    # teardown freed the domain): ~1 run in 2 hung before the fix, so run a few.
    t0 = time.monotonic()
    procs = [subprocess.Popen([sys.executable, "-c", code, str(lab_inventory.path), held_domain],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=ROOT)) for _ in range(RUNS)]
    hung = 0
    for p in procs:
        try:
            out, err = p.communicate(timeout=max(1.0, 30 - (time.monotonic() - t0)))
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            hung += 1
            continue
        assert p.returncode == 0 and out.strip() == "done", (p.returncode, out, err[-2000:])
    took = time.monotonic() - t0
    assert hung == 0, f"{case}: {hung} of {RUNS} processes hung at exit with a virDomain alive after Session.close()"
    print(f"{case}: {RUNS} processes exited in {took:.2f} s")
