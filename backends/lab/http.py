"""The lab's HTTP server: serves cloud images on a lab address for `template add --url`.

It runs inside the lab's central host (network, mount and UTS namespaces of central's holder),
listening on ``http://192.168.100.10:8088/`` (:data:`PORT`), so hypervisors fetch images across
the lab's underlay as they would from a mirror. Being a process of central's namespace, it goes
with the lab: `virtdeck lab down` kills every process there. It is started on demand by
:func:`ensure` (idempotent: a live server is reused), which records ``http.json`` in the lab dir
(``{"pid", "start_ticks", "port", "root", "log"}``, the owner-record fields used across the lab,
so a recycled PID is never taken for it); :func:`stop` ends it by that PID.

The server (:func:`serve`, ``python -m virtdeck.backends.lab.http serve ROOT ADDR PORT``) is
http.server with byte ranges (``Range: bytes=N-`` / ``N-M`` → 206, what ``curl -C -`` sends to
resume) and an optional per-connection rate limit in bytes/s (``?rate=`` is never trusted from
clients: the limit is the server's ``--rate``), logging one JSON line per request (method, path,
Range header, status, bytes sent) to ``http.log`` so tests can see a resume happen.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import topology as topo
from .hosts import popen_in
from .owners import start_ticks
from .state import LabError, lab_dir, pid_alive

PORT = 8088
CHUNK = 1 << 16


def record_path() -> Path:
    return lab_dir() / "http.json"


def root_dir() -> Path:
    """The directory served (links to the image cache's files)."""
    return lab_dir() / "http"


def base_url(port: int = PORT) -> str:
    return f"http://{topo.CENTRAL_ADDRESS}:{port}"


def _alive(rec: dict | None) -> bool:
    return bool(rec) and pid_alive(rec.get("pid")) and start_ticks(rec["pid"]) == rec.get("start_ticks")


def read_record() -> dict | None:
    try:
        return json.loads(record_path().read_text())
    except (OSError, ValueError):
        return None


def publish(files: dict[str, Path]) -> dict[str, str]:
    """Make ``files`` (served name → local path) available; returns served name → URL.
    Existing links are replaced (symlinks: the lab's namespaces share this filesystem)."""
    root = root_dir()
    root.mkdir(parents=True, exist_ok=True)
    urls = {}
    for name, path in files.items():
        if "/" in name or name.startswith("."):
            raise LabError(f"served file name must be a plain name, not {name!r}")
        link = root / name
        tmp = root / f".{name}.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(Path(path).resolve())
        tmp.replace(link)
        urls[name] = f"{base_url((read_record() or {}).get('port', PORT))}/{name}"
    return urls


def ensure(rate: int | None = None, port: int = PORT, log=print, timeout: float = 10.0) -> str:
    """Start the server in central unless a live one is recorded; returns its base URL.

    ``rate``: bytes/s per connection (None: unlimited); a live server with another rate is
    restarted. Raises LabError when the lab is not up or the server does not answer in time.
    """
    rec = read_record()
    if _alive(rec) and rec.get("rate") == rate and rec.get("port") == port:
        return base_url(port)
    if _alive(rec):
        stop()
    root = root_dir()
    root.mkdir(parents=True, exist_ok=True)
    logf = lab_dir() / "http.log"
    argv = [sys.executable, "-m", "virtdeck.backends.lab.http", "serve", str(root), topo.CENTRAL_ADDRESS,
            str(port), str(logf)] + ([f"--rate={rate}"] if rate else [])
    proc = popen_in("central", argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=open(lab_dir() / "http.err", "w"), start_new_session=True)
    # nsenter execs python in place: the PID is the server's own
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise LabError(f"lab http server exited ({(lab_dir() / 'http.err').read_text()[-300:]})")
        if (root / ".ready").exists() and (root / ".ready").read_text() == str(proc.pid):
            break
        time.sleep(0.05)
    else:
        proc.kill()
        raise LabError(f"lab http server did not start within {timeout:.0f} s")
    record_path().write_text(json.dumps({"pid": proc.pid, "start_ticks": start_ticks(proc.pid), "port": port,
                                         "rate": rate, "root": str(root), "log": str(logf)}) + "\n")
    log(f"lab http: serving {root} at {base_url(port)} (pid {proc.pid})")
    return base_url(port)


def stop() -> bool:
    """Stop the recorded server (by its PID, checked against its start time); True if one ran."""
    rec = read_record()
    record_path().unlink(missing_ok=True)
    if not _alive(rec):
        return False
    os.kill(rec["pid"], signal.SIGTERM)
    for _ in range(100):
        if not pid_alive(rec["pid"]):
            break
        time.sleep(0.05)
    return True


def requests_log() -> list[dict]:
    """The server's request log, one dict per request (see module doc)."""
    rec = read_record() or {}
    try:
        text = Path(rec.get("log") or lab_dir() / "http.log").read_text()
    except OSError:
        return []
    return [json.loads(x) for x in text.splitlines() if x.strip()]


def serve(root: str, address: str, port: int, logfile: str, rate: int | None = None) -> None:
    """Run the server (blocking). See the module doc for what it answers."""
    import http.server
    import threading

    log_lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):  # one JSON line per request instead
            pass

        def _log(self, status: int, sent: int) -> None:
            with log_lock, open(logfile, "a") as f:
                f.write(json.dumps({"t": time.time(), "client": self.client_address[0], "method": self.command,
                                    "path": self.path, "range": self.headers.get("Range"),
                                    "status": status, "sent": sent}) + "\n")

        def _target(self) -> Path | None:
            name = self.path.split("?", 1)[0].lstrip("/")
            if not name or "/" in name or name.startswith("."):
                return None
            p = Path(root) / name
            return p if p.is_file() else None

        def do_HEAD(self):
            self._answer(head=True)

        def do_GET(self):
            self._answer(head=False)

        def _answer(self, head: bool) -> None:
            p = self._target()
            if p is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                self._log(404, 0)
                return
            size = p.stat().st_size
            start, end, status = 0, size - 1, 200
            rng = self.headers.get("Range")
            if rng and rng.startswith("bytes="):
                a, _, b = rng[6:].split(",")[0].partition("-")
                try:
                    start = int(a) if a else max(0, size - int(b))
                    end = int(b) if a and b else size - 1
                except ValueError:
                    start, end = 0, size - 1
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    self._log(416, 0)
                    return
                end = min(end, size - 1)
                status = 206
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            sent = 0
            if not head:
                t0 = time.monotonic()
                try:
                    with open(p, "rb") as f:
                        f.seek(start)
                        left = end - start + 1
                        while left > 0:
                            buf = f.read(min(CHUNK, left))
                            if not buf:
                                break
                            self.wfile.write(buf)
                            sent += len(buf)
                            left -= len(buf)
                            if rate:
                                ahead = sent / rate - (time.monotonic() - t0)
                                if ahead > 0:
                                    time.sleep(ahead)
                except (BrokenPipeError, ConnectionResetError):
                    pass
            self._log(status, sent)

    srv = http.server.ThreadingHTTPServer((address, port), Handler)
    srv.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown, daemon=True).start())
    (Path(root) / ".ready").write_text(str(os.getpid()))
    srv.serve_forever()


if __name__ == "__main__":  # python -m virtdeck.backends.lab.http serve ROOT ADDR PORT LOG [--rate=N]
    if len(sys.argv) >= 6 and sys.argv[1] == "serve":
        r = next((int(a.split("=", 1)[1]) for a in sys.argv[6:] if a.startswith("--rate=")), None)
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], r)
    else:
        sys.exit("usage: python -m virtdeck.backends.lab.http serve ROOT ADDR PORT LOGFILE [--rate=BYTES_PER_S]")
