"""NoCloud seed ISO builder (cloud-init's "cidata" volume), pure Python with pycdlib.

:func:`build_nocloud_iso` ``(meta_data, user_data, network_config=None) -> bytes`` returns the ISO
image bytes (~68 KiB): volume id ``cidata``, ISO 9660 interchange level 3 + Joliet + Rock Ridge
1.09, root files ``meta-data``, ``user-data`` and (if given) ``network-config`` under their real
names (Joliet/Rock Ridge) — exactly what cloud-init's NoCloud datasource looks for on a block
device labelled ``cidata`` (seen working: ``DataSourceNoCloud [seed=/dev/sr0]``, LAB-NOTES.md).

The caller passes the documents already rendered (YAML text; user-data usually starts with
``#cloud-config``). This module never looks inside them: a clear-text password is the caller's
problem to refuse before it gets here. Attach the ISO read-only as an IDE cdrom on machine 'pc'
(the Debian cloud kernel has no AHCI driver, so a SATA cdrom stays invisible).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pycdlib

VOLUME_ID = "cidata"

# real name -> ISO 9660 level-3 identifier (d-characters only: A-Z 0-9 _)
_ISO_NAMES = {
    "meta-data": "/META_DATA.;1",
    "user-data": "/USER_DATA.;1",
    "network-config": "/NETWORK_CONFIG.;1",
    "vendor-data": "/VENDOR_DATA.;1",
}


def build_nocloud_iso(meta_data: str, user_data: str, network_config: str | None = None,
                      vendor_data: str | None = None) -> bytes:
    """The NoCloud seed ISO holding the given documents (UTF-8), as bytes.

    ``meta_data`` should carry at least ``instance-id`` (a new id makes cloud-init run again).
    Raises ValueError when ``meta_data`` or ``user_data`` is not a str.
    """
    files = {"meta-data": meta_data, "user-data": user_data}
    if network_config is not None:
        files["network-config"] = network_config
    if vendor_data is not None:
        files["vendor-data"] = vendor_data
    for name, text in files.items():
        if not isinstance(text, str):
            raise ValueError(f"{name} must be text, not {type(text).__name__}")
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=VOLUME_ID)
    try:
        for name, text in files.items():
            data = text.encode("utf-8")
            iso.add_fp(io.BytesIO(data), len(data), _ISO_NAMES[name], rr_name=name,
                       joliet_path=f"/{name}")
        out = io.BytesIO()
        iso.write_fp(out)
    finally:
        iso.close()
    return out.getvalue()


def write_nocloud_iso(path: str | os.PathLike, meta_data: str, user_data: str,
                      network_config: str | None = None) -> Path:
    """Write :func:`build_nocloud_iso`'s bytes to ``path`` (mode 0600: user-data may hold a
    password hash and SSH keys). Returns the path."""
    data = build_nocloud_iso(meta_data, user_data, network_config)
    p = Path(path)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return p


def read_nocloud_iso(data: bytes) -> dict[str, str]:
    """The documents in a seed ISO by real name (Rock Ridge names), for tests and inspection."""
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(data))
    try:
        out = {}
        for name in _ISO_NAMES:
            buf = io.BytesIO()
            try:
                iso.get_file_from_iso_fp(buf, rr_path=f"/{name}")
            except pycdlib.pycdlibexception.PyCdlibInvalidInput:
                continue
            out[name] = buf.getvalue().decode("utf-8")
        return out
    finally:
        iso.close()
