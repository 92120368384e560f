"""Where an OVN database is: its member list (``tcp:``, ``ssl:``, ``unix:``; a comma-separated
raft cluster) and, for ``ssl:`` members, the client's private key, certificate and CA certificate.

- :func:`members` splits a connection string the way the python-ovs IDL does.
- :class:`SslFiles` holds the three PEM paths; :meth:`SslFiles.check` names the file that is
  missing or unreadable (the inventory calls it at load, :func:`use_ssl` again at connect).
- :func:`use_ssl` hands the files to python-ovs. They are PROCESS-WIDE there
  (``ovs.stream.Stream.ssl_set_private_key_file`` & co. set class attributes read by every
  ``ssl:`` stream), so one process can speak SSL with one PKI only; a second, different set
  raises instead of silently re-keying the first connection.
- :func:`preflight_ssl` does one TLS handshake per member with Python's ``ssl`` module, set up
  as python-ovs' ``SSLStream`` does (TLS >= 1.2, CERT_REQUIRED, no host-name check), because
  python-ovs swallows handshake errors and just retries: a wrong CA would otherwise be a bare
  timeout. It turns the failure into one sentence naming the file at fault.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from dataclasses import dataclass

from ovs import stream as ovs_stream

from ...console.errors import HostError

SCHEMES = ("tcp", "ssl", "unix")


def members(remote: str) -> list[str]:
    """The members of ``remote`` ("tcp:A:6641,ssl:B:6641"), stripped, in the given order.

    Same rule as ``ovs.db.idl.Idl._parse_remotes``: a piece without ``:`` continues the previous
    member (a unix path with a comma).
    """
    out: list[str] = []
    for piece in remote.split(","):
        piece = piece.strip()
        if out and ":" not in piece:
            out[-1] += "," + piece
        elif piece:
            out.append(piece)
    return out


def scheme(member: str) -> str:
    """``tcp`` / ``ssl`` / ``unix`` (or whatever precedes the first ``:``)."""
    return member.split(":", 1)[0]


def is_cluster(remote: str) -> bool:
    """True when ``remote`` lists more than one member (a raft cluster, or a relay set)."""
    return len(members(remote)) > 1


@dataclass(frozen=True)
class SslFiles:
    """PEM files for ``ssl:`` members: the client's ``private_key`` and ``certificate`` (signed
    by a CA the servers trust) and ``ca_cert``, the CA that signed the servers' certificates.
    Paths as written in the inventory (``~`` expanded)."""

    private_key: str
    certificate: str
    ca_cert: str

    def paths(self) -> dict[str, str]:
        """{inventory key: expanded path} for the three files."""
        return {k: os.path.expanduser(getattr(self, k))
                for k in ("private_key", "certificate", "ca_cert")}

    def check(self, prefix: str = "ovn.") -> None:
        """Raise :class:`HostError` naming the first key whose file is missing, not a regular
        file or unreadable ("ovn.private_key: no such file /etc/ovn/key.pem")."""
        for key, path in self.paths().items():
            problem = file_problem(path)
            if problem:
                raise HostError(f"{prefix}{key}: {problem} {path}")


def file_problem(path: str) -> str | None:
    """None when ``path`` is a readable regular file, else what is wrong ("no such file",
    "not a file", "cannot read")."""
    if not os.path.exists(path):
        return "no such file"
    if not os.path.isfile(path):
        return "not a file:"
    if not os.access(path, os.R_OK):
        return "cannot read"
    return None


_ssl_lock = threading.Lock()
_ssl_in_use: SslFiles | None = None


def use_ssl(files: SslFiles) -> None:
    """Check ``files`` and give them to python-ovs for every ``ssl:`` stream of this process.

    Raises HostError when a file is missing/unreadable, or when another set of files is
    already in use (python-ovs keeps one set per process, see the module docstring).
    """
    global _ssl_in_use
    files.check()
    with _ssl_lock:
        if _ssl_in_use is not None and _ssl_in_use.paths() != files.paths():
            raise HostError("OVN SSL: this process already uses other key/certificate/CA files "
                            f"({_ssl_in_use.certificate}); python-ovs allows one set per process")
        p = files.paths()
        ovs_stream.Stream.ssl_set_private_key_file(p["private_key"])
        ovs_stream.Stream.ssl_set_certificate_file(p["certificate"])
        ovs_stream.Stream.ssl_set_ca_cert_file(p["ca_cert"])
        _ssl_in_use = files


def _ssl_context(files: SslFiles) -> ssl.SSLContext:
    """The client context python-ovs' SSLStream builds, so a preflight fails where it would.
    Raises HostError naming the file when a PEM file cannot be loaded."""
    p = files.paths()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = False
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_verify_locations(p["ca_cert"])
    except (ssl.SSLError, OSError) as exc:
        raise HostError(f"ovn.ca_cert: {p['ca_cert']} is not a PEM CA certificate ({_why(exc)})") from None
    try:
        ctx.load_cert_chain(p["certificate"], p["private_key"])
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise HostError(f"ovn.private_key: {p['private_key']} does not match the certificate "
                            f"{p['certificate']}") from None
        raise HostError(f"ovn.certificate / ovn.private_key: cannot load {p['certificate']} with "
                        f"{p['private_key']} ({_why(exc)})") from None
    except OSError as exc:
        raise HostError(f"ovn.certificate: cannot load {p['certificate']} ({_why(exc)})") from None
    return ctx


def _why(exc: BaseException) -> str:
    return getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)


def preflight_ssl(remote: str, files: SslFiles, timeout: float = 5.0) -> None:
    """Handshake with every ``ssl:`` member of ``remote``; return as soon as one succeeds.

    Raises HostError with one sentence naming the file at fault when no member accepted us and
    at least one refused on certificate grounds: the server's certificate is not signed by
    ``ca_cert`` ("… is not signed by the CA in ovn.ca_cert FILE"), or the server refused our
    ``certificate`` (its CA does not trust it). Members that cannot be reached at all (refused,
    timed out after ``timeout`` seconds each) are left to the normal connect path, which retries.
    """
    ssl_members = [m for m in members(remote) if scheme(m) == "ssl"]
    if not ssl_members:
        return
    ctx = _ssl_context(files)
    p = files.paths()
    failure: str | None = None
    for m in ssl_members:
        host, _, port = m.split(":", 1)[1].rpartition(":")
        host = host.strip("[]")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout) as raw:
                with ctx.wrap_socket(raw, do_handshake_on_connect=True) as tls:
                    # TLS 1.3: a server refusing our certificate says so after the handshake;
                    # a read with a short timeout brings its alert in.
                    tls.settimeout(0.2)
                    try:
                        tls.recv(1)
                    except (socket.timeout, ssl.SSLWantReadError):
                        pass
            return
        except ssl.SSLCertVerificationError as exc:
            failure = (f"OVN at {m}: the server's certificate is not signed by the CA in "
                       f"ovn.ca_cert {p['ca_cert']} ({exc.verify_message})")
        except ssl.SSLError as exc:
            reason = _why(exc)
            if "UNKNOWN_CA" in reason.upper() or "CERTIFICATE" in reason.upper():
                failure = (f"OVN at {m}: the server refused the client certificate in "
                           f"ovn.certificate {p['certificate']} ({reason})")
            else:
                failure = failure or f"OVN at {m}: TLS handshake failed ({reason})"
        except OSError:
            continue  # not reachable now: the IDL's own reconnect handles it
    if failure:
        raise HostError(failure)


def prepare(remote: str, files: SslFiles | None, timeout: float, what: str) -> None:
    """Before connecting to ``remote`` (``what``: "OVN northbound" / "OVN southbound", for the
    messages): when a member is ``ssl:``, check the inventory's SSL files, handshake first (a
    wrong CA or a refused certificate becomes one sentence here, not a bare timeout later,
    within min(``timeout``, 5) seconds) and install them in python-ovs (:func:`use_ssl`).
    Nothing to do for tcp:/unix: members. Raises HostError naming the key or file at fault."""
    if not any(scheme(m) == "ssl" for m in members(remote)):
        return
    if files is None:
        raise HostError(f"{what} on {remote}: ssl: needs ovn.private_key, ovn.certificate "
                        "and ovn.ca_cert in the inventory")
    files.check()
    preflight_ssl(remote, files, timeout=min(timeout, 5.0))
    use_ssl(files)
