"""Is a local file a disk image worth uploading as a template? Checked before any upload.

Rule (facts from ``qemu-img info --output=json``, which probes the format from the bytes):

- an empty file is refused;
- ``qcow2``: ``qemu-img check`` must find no corruption (random bytes are never qcow2: the
  format has a magic number, so this catches a truncated or damaged download);
- ``raw`` (qemu-img's answer for anything it does not recognise): accepted only when the first
  bytes show a disk — an MBR boot signature with a partition entry, a GPT header, or a
  filesystem superblock the lab's direct-kernel templates use (ext2/3/4, XFS, btrfs);
  otherwise it is "raw data with no partition table and no filesystem" and refused;
- any other format (vmdk, vdi, vhdx, vpc, …) is refused with the ``qemu-img convert`` that
  turns it into qcow2 (templates are backing files of qcow2 overlays).

Runs ``qemu-img`` locally (Debian package qemu-utils), never over SSH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from ..errors import ValidationError

ACCEPTED = ("qcow2", "raw")
QEMU_IMG_TIMEOUT = 120.0  # seconds; qemu-img check of a multi-GiB image takes a few seconds


def _head(path: Path, size: int = 70 * 1024) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(size)


def raw_disk_kind(head: bytes) -> str | None:
    """What the first bytes of a raw image show: ``"gpt"``, ``"mbr"``, ``"ext4"`` (ext2/3/4),
    ``"xfs"``, ``"btrfs"``, or None (no partition table, no filesystem). ``head``: at least the
    first 64 KiB + 100 bytes for btrfs (its superblock is at 64 KiB)."""
    if head[512:520] == b"EFI PART":
        return "gpt"
    if len(head) >= 512 and head[510:512] == b"\x55\xaa":
        # a boot signature alone is 1 in 65536 for random bytes: require a partition entry with
        # a type and a sane boot flag (0x00 or 0x80)
        for i in range(4):
            entry = head[446 + 16 * i: 446 + 16 * (i + 1)]
            if entry[4] != 0 and entry[0] in (0x00, 0x80):
                return "mbr"
    if head[1080:1082] == b"\x53\xef":
        return "ext4"
    if head[:4] == b"XFSB":
        return "xfs"
    if head[0x10040:0x10048] == b"_BHRfS_M":
        return "btrfs"
    return None


def _qemu_img(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("qemu-img")
    if exe is None:
        raise ValidationError("image", "qemu-img is not installed here (apt-get install qemu-utils); "
                              "it checks an image before upload")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=QEMU_IMG_TIMEOUT)


def check_image(path: str | os.PathLike, field: str = "image") -> str:
    """Check the local file ``path`` by the module's rule; return its format (``qcow2`` or
    ``raw``). Raises ValidationError(field, one sentence) otherwise. Nothing is uploaded here."""
    p = Path(path).expanduser()
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise ValidationError(field, f"cannot read {p} ({exc.strerror})") from None
    if size == 0:
        raise ValidationError(field, f"{p} is empty (0 bytes); a template is a qcow2 or raw disk image")
    info = _qemu_img("info", "--output=json", str(p))
    if info.returncode != 0:
        why = (info.stderr.strip().splitlines() or ["no reason given"])[-1]
        raise ValidationError(field, f"qemu-img cannot read {p} as a disk image ({why[:200]})")
    fmt = json.loads(info.stdout).get("format", "")
    if fmt == "qcow2":
        chk = _qemu_img("check", "-q", "-f", "qcow2", str(p))
        if chk.returncode not in (0, 3):  # 3: leaked clusters only (space, not data); 2: corruption
            why = (chk.stderr.strip().splitlines() or chk.stdout.strip().splitlines() or ["errors found"])[-1]
            raise ValidationError(field, f"{p} is a damaged qcow2 image (qemu-img check: {why[:200]})")
        return fmt
    if fmt == "raw":
        if raw_disk_kind(_head(p)) is None:
            raise ValidationError(field, f"{p} is raw data with no partition table and no filesystem "
                                  f"(qemu-img sees no image format); a template is a qcow2 or raw disk image")
        return fmt
    raise ValidationError(field, f"{p} is a {fmt} image; convert it first: "
                          f"qemu-img convert -O qcow2 {p} {p.with_suffix('.qcow2')}")
