"""What a disk image says about how it boots: partition table, EFI system partition, BIOS boot code.

:func:`parse_head` reads the first :data:`HEAD_SECTORS` sectors of an image's *guest* view (bytes
from offset 0, i.e. after qcow2 decoding) in pure Python: a GPT (protective MBR + ``EFI PART``
header at LBA 1, entries usually at LBA 2-33), an MBR, or a bare ext2/3/4 filesystem (superblock
magic 0xEF53 at byte 1080: no bootloader, so it boots only by direct kernel boot).

:func:`probe_local` gets those bytes for a local file with ``qemu-img info --output=json`` (format,
virtual size) and ``qemu-img dd`` (the head, decoded from any format); :func:`probe_on_host` does
the same on a hypervisor over its SSH link, for images downloaded there.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import struct
import subprocess
import tempfile
import uuid
from dataclasses import dataclass

from ..console.errors import HostError, ValidationError

SECTOR = 512
HEAD_SECTORS = 34  # MBR + GPT header + 128 entries of 128 bytes
ESP_GUID = uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
BIOS_BOOT_GUID = uuid.UUID("21686148-6449-6e6f-744e-656564454649")


@dataclass(frozen=True)
class DiskLayout:
    """How an image is laid out. ``table``: 'gpt', 'mbr' or 'none'; ``esp``: an EFI system
    partition is there; ``bios_boot``: a GPT BIOS boot partition (GRUB's core.img) is there;
    ``boot_code``: the MBR holds boot code (non-zero bytes before 0x1b8); ``filesystem``: 'ext' for
    a bare ext2/3/4 filesystem at offset 0; ``format``/``virtual_size`` from qemu-img (bytes)."""

    table: str
    esp: bool = False
    bios_boot: bool = False
    boot_code: bool = False
    filesystem: str | None = None
    format: str | None = None
    virtual_size: int | None = None
    esp_lba: tuple[int, int] | None = None  # first and last sector of the (first) ESP
    efi_arches: tuple[str, ...] = ()        # arches of the ESP's removable-media loaders

    def boot_modes(self) -> tuple[str, ...]:
        """The boot modes this image can use, best guess first (see :func:`suggest_boot`)."""
        modes = []
        if self.table != "none" and (self.bios_boot or (self.table == "mbr" and self.boot_code)):
            modes.append("bios")
        if self.esp:
            modes.append("uefi")
        if self.filesystem:
            modes.append("kernel")
        return tuple(modes)

    def describe(self) -> str:
        """One line for the operator: ``GPT, ESP, BIOS boot partition (qcow2, 2.0 GiB)``."""
        parts = [{"gpt": "GPT", "mbr": "MBR", "none": "no partition table"}[self.table]]
        if self.esp:
            parts.append("ESP")
        if self.bios_boot:
            parts.append("BIOS boot partition")
        if self.table == "mbr" and self.boot_code:
            parts.append("MBR boot code")
        if self.filesystem:
            parts.append(f"bare {self.filesystem} filesystem")
        if self.efi_arches:
            parts.append(f"EFI loader for {'/'.join(self.efi_arches)}")
        size = f", {self.virtual_size / 2**30:.1f} GiB" if self.virtual_size else ""
        return ", ".join(parts) + (f" ({self.format}{size})" if self.format else "")


def suggest_boot(layout: DiskLayout, arch: str) -> str | None:
    """The boot mode to use without being told: aarch64 boots by UEFI; an x86_64 image with BIOS
    boot code boots by BIOS (no NVRAM to keep, faster firmware); ESP only → UEFI; a bare
    filesystem → 'kernel'. None when the image shows no way to boot."""
    modes = layout.boot_modes()
    if arch == "aarch64":
        return "uefi" if "uefi" in modes else ("kernel" if "kernel" in modes else None)
    return modes[0] if modes else None


def parse_head(head: bytes) -> DiskLayout:
    """The layout from the first sectors of an image (at least 2 for a GPT header; entries beyond
    the bytes given are not read). Never raises for garbage: it is then 'none'."""
    if len(head) >= 1080 + 2 and struct.unpack_from("<H", head, 1080)[0] == 0xEF53:
        return DiskLayout("none", filesystem="ext")
    if len(head) < SECTOR or head[510:512] != b"\x55\xaa":
        return DiskLayout("none")
    boot_code = any(head[:0x1b8])
    parts = [head[0x1be + 16 * i:0x1be + 16 * (i + 1)] for i in range(4)]
    types = [p[4] for p in parts]
    if 0xEE in types and len(head) >= 2 * SECTOR and head[SECTOR:SECTOR + 8] == b"EFI PART":
        entries_lba, count, size = struct.unpack_from("<QII", head, SECTOR + 72)
        esp = bios = False
        esp_lba = None
        for i in range(min(count, 256)):
            off = entries_lba * SECTOR + i * size
            if size < 48 or off + 48 > len(head):
                break
            guid = uuid.UUID(bytes_le=bytes(head[off:off + 16]))
            if guid == ESP_GUID and esp_lba is None:
                esp_lba = struct.unpack_from("<QQ", head, off + 32)
            esp |= guid == ESP_GUID
            bios |= guid == BIOS_BOOT_GUID
        return DiskLayout("gpt", esp=esp, bios_boot=bios, boot_code=boot_code, esp_lba=esp_lba)
    return DiskLayout("mbr", esp=0xEF in types, boot_code=boot_code)


def probe_local(path: str | os.PathLike) -> DiskLayout:
    """:func:`parse_head` of a local image file (any format qemu-img reads), with its format and
    virtual size. Raises ValidationError naming the file when qemu-img cannot read it."""
    try:
        info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(path)], capture_output=True,
                                         text=True, check=True, timeout=60).stdout)
        with tempfile.NamedTemporaryFile(prefix="virtdeck-head-") as tmp:
            subprocess.run(["qemu-img", "dd", "-f", info["format"], "-O", "raw", f"bs={SECTOR}",
                            f"count={HEAD_SECTORS}", f"if={path}", f"of={tmp.name}"],
                           capture_output=True, text=True, check=True, timeout=60)
            head = open(tmp.name, "rb").read()
    except FileNotFoundError:
        raise ValidationError("image", "qemu-img is not installed here (apt install qemu-utils)") from None
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, ValueError, KeyError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise ValidationError("image", f"{path}: qemu-img cannot read it ({detail.strip()[:200]})") from None
    layout = parse_head(head)
    arches = _efi_arches(path, info["format"], layout.esp_lba) if layout.esp_lba else ()
    return DiskLayout(**{**layout.__dict__, "format": info["format"], "virtual_size": info.get("virtual-size"),
                         "efi_arches": arches})


#: removable-media loader name in EFI/BOOT → guest arch (UEFI spec 3.5.1.1)
EFI_LOADERS = {"BOOTX64.EFI": "x86_64", "BOOTAA64.EFI": "aarch64"}
ESP_READ_MAX = 128 * 1024 * 2  # sectors: read at most 128 MiB of an ESP


def _efi_arches(path, fmt: str, lba: tuple[int, int]) -> tuple[str, ...]:
    """The arches whose loader the ESP holds in /EFI/BOOT (read with qemu-img dd + mtools' mdir);
    () when mtools is missing or the FAT cannot be read (detection only: never an error)."""
    first, last = lba
    count = min(last - first + 1, ESP_READ_MAX)
    try:
        with tempfile.NamedTemporaryFile(prefix="virtdeck-esp-") as tmp:
            subprocess.run(["qemu-img", "dd", "-f", fmt, "-O", "raw", f"bs={SECTOR}", f"skip={first}",
                            f"count={count}", f"if={path}", f"of={tmp.name}"],
                           capture_output=True, check=True, timeout=120)
            out = subprocess.run(["mdir", "-b", "-i", tmp.name, "::/EFI/BOOT"], capture_output=True, text=True,
                                 timeout=30, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    names = {line.rsplit("/", 1)[-1].strip().upper() for line in out.splitlines()}
    return tuple(a for n, a in EFI_LOADERS.items() if n in names)


def probe_on_host(session, host: str, path: str) -> DiskLayout:
    """:func:`probe_local` run on hypervisor ``host`` (``qemu-img`` there, over SSH) for the image
    at ``path`` on that host. Raises HostError when the host cannot read it."""
    q = shlex.quote(path)
    script = (f"set -e; t=$(mktemp); trap 'rm -f $t' EXIT; qemu-img info --output=json {q} > $t.json; "
              f"f=$(sed -n 's/.*\"format\": \"\\([a-z0-9]*\\)\".*/\\1/p' $t.json | head -1); "
              f"qemu-img dd -f \"$f\" -O raw bs={SECTOR} count={HEAD_SECTORS} if={q} of=$t >/dev/null; "
              f"cat $t.json; echo @@head; base64 -w0 $t; rm -f $t.json")
    res = session.run(host, ["sh", "-c", script], timeout=120)
    if res.rc != 0 or "@@head" not in res.stdout:
        raise HostError(f"{host}: qemu-img cannot read {path}: {(res.stderr or res.stdout).strip()[-200:]}")
    info_text, _, b64 = res.stdout.partition("@@head")
    info = json.loads(info_text)
    layout = parse_head(base64.b64decode(b64.strip()))
    return DiskLayout(**{**layout.__dict__, "format": info.get("format"), "virtual_size": info.get("virtual-size")})
