"""The lab's cloud-image recipes (backends/lab/image_disk.py) without building: cache keys,
the BIOS boot sectors written from Python, the GRUB config per arch."""

from __future__ import annotations

import json
import struct

from virtdeck.backends.lab import image_disk as m


def test_each_recipe_has_its_own_stable_hash_and_packages():
    hashes = {n: r.hash() for n, r in m.RECIPES.items()}
    assert len(set(hashes.values())) == len(hashes)
    assert hashes == {n: r.hash() for n, r in m.RECIPES.items()}
    for r in m.RECIPES.values():
        assert {"cloud-init", "dbus", "acpid", "cloud-guest-utils"} <= set(r.packages())
    assert "grub-efi-arm64-bin" in m.RECIPES["debian12-arm64"].packages()
    assert m.RECIPES["debian12-arm64"].guest_arch == "aarch64" and m.RECIPES["debian12-arm64"].boot == "uefi"


def test_a_changed_recipe_is_not_taken_from_the_cache(tmp_path):
    r = m.RECIPES["debian12-gpt"]
    out = tmp_path / r.name
    out.mkdir()
    (out / f"{r.name}.qcow2").write_bytes(b"x" * 10)
    manifest = {"recipe": r.hash(), "sha256": "ab" * 32, "files": {f"{r.name}.qcow2": 10}}
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert m.cached_image(r, tmp_path).sha256 == "ab" * 32
    (out / "manifest.json").write_text(json.dumps({**manifest, "recipe": "0" * 64}))
    assert m.cached_image(r, tmp_path) is None
    (out / "manifest.json").write_text(json.dumps({**manifest, "files": {f"{r.name}.qcow2": 11}}))
    assert m.cached_image(r, tmp_path) is None  # damaged: size differs


def test_bios_boot_sectors_as_grub_setup_writes_them(tmp_path):
    disk = tmp_path / "d.raw"
    mbr = bytearray(512)
    mbr[0x1be:0x1ce] = bytes([0, 0, 2, 0, 0xEE, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])
    mbr[510:512] = b"\x55\xaa"
    disk.write_bytes(bytes(mbr) + bytes(4096 * 512))
    boot = bytes([0xeb]) + bytes(range(1, 256)) + bytes(256)
    core = bytearray(3 * 512)
    core[0x1fc:0x1fe] = struct.pack("<H", 2)  # grub-mkimage fills the length
    m.install_bios_grub(disk, boot, bytes(core), 2048, 2048)
    data = disk.read_bytes()
    assert data[:0x5c] == boot[:0x5c]
    assert struct.unpack_from("<Q", data, 0x5c)[0] == 2048
    assert data[0x66:0x68] == b"\x90\x90"
    assert data[0x1b8:0x200] == bytes(mbr[0x1b8:0x200])  # the protective MBR's table is kept
    assert struct.unpack_from("<Q", data, 2048 * 512 + 0x1f4)[0] == 2049
    assert struct.unpack_from("<H", data, 2048 * 512 + 0x1fc)[0] == 2


def test_grub_config_per_arch():
    x86 = m.grub_cfg(m.RECIPES["debian12-gpt"], "6.1.0-1-cloud-amd64")
    assert "console=ttyS0,115200" in x86 and 'grub_platform" = pc' in x86
    assert "root=LABEL=rootfs" in x86 and "/boot/vmlinuz-6.1.0-1-cloud-amd64" in x86
    arm = m.grub_cfg(m.RECIPES["debian12-arm64"], "6.1.0-1-cloud-arm64")
    assert "console=ttyAMA0" in arm and "serial" not in arm
