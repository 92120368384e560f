"""Lab cloud images shaped like the distributions' own: one qcow2 disk with a GPT table and GRUB.

Each recipe (:data:`RECIPES`) builds, offline from Debian's packages with mmdebstrap, a disk laid
out like Debian's "genericcloud" images::

    sector 2048   p1  BIOS boot (1 MiB, EF02)   GRUB core.img (x86_64 only; MBR = GRUB boot.img)
    +1 MiB        p2  EFI system (32 MiB, FAT)  /EFI/BOOT/BOOTX64.EFI or BOOTAA64.EFI
    +33 MiB       p3  root (ext4, LABEL=rootfs) /boot/grub/grub.cfg, kernel, initrd

No loop device is needed (CI machines may have none): the table is written by ``sgdisk`` on a
plain file, the root filesystem by ``mkfs.ext4 -d -E offset=…`` straight into the file, the ESP
by ``mkfs.vfat`` + ``mcopy`` on a small file copied in, and the BIOS boot sectors by
:func:`install_bios_grub` (what ``grub-install`` does for an embedded core.img, from Python).
GRUB's modules come from the image's own ``grub-*-bin`` packages (``grub-mkimage -d``), so the
host needs only ``grub-common``; arm64 images are built through ``qemu-user-static`` + binfmt.

Output in ``image_cache_dir()/<name>/``: ``<name>.qcow2`` (zstd-compressed) and
``manifest.json`` ``{"recipe": sha256 of the recipe, "sha256": of the qcow2, "files": {name:
bytes}, "build_seconds", "boot", "arch", "os", "default_user"}``; rebuilt only when the recipe
changes (same cache rules as :mod:`.image`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import struct
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .image import DPKG_OPTS, MIRROR, SECURITY_MIRROR, customize_hook, essential_hook, sha256_file
from .state import LabError, image_cache_dir, run

SECTOR = 512
BIOS_START, BIOS_SECTORS = 2048, 2048           # 1 MiB BIOS boot partition
ESP_START, ESP_SECTORS = 4096, 32 * 2048        # 32 MiB EFI system partition
ROOT_START = ESP_START + ESP_SECTORS
DISK_BYTES = 2 * 1024 ** 3                      # 2 GiB virtual; cloud-init grows p3 and /

COMMON_PACKAGES = [
    "systemd-sysv", "udev", "dbus", "acpid", "cloud-init", "cloud-guest-utils", "initramfs-tools",
    "zstd", "e2fsprogs", "ifupdown", "isc-dhcp-client", "iproute2", "openssh-server", "sudo",
    "ca-certificates", "netbase",
]
ARCH_PACKAGES = {
    "amd64": ["linux-image-cloud-amd64", "grub-pc-bin", "grub-efi-amd64-bin"],
    "arm64": ["linux-image-cloud-arm64", "grub-efi-arm64-bin"],
}
# GRUB modules built into the images (nothing is loaded from disk at boot).
GRUB_MODULES = ["part_gpt", "part_msdos", "ext2", "fat", "search", "search_label", "normal",
                "linux", "configfile", "echo", "test", "boot", "ls", "cat", "sleep"]
GRUB_PLATFORM_MODULES = {
    "i386-pc": ["biosdisk", "serial", "terminal"],
    "x86_64-efi": ["efi_gop", "all_video"],
    "arm64-efi": [],
}

# The lab template's hooks (image.py) with virtio_mmio added (aarch64's virt machine) and no
# fixed hostname (cloud-init sets it).
ESSENTIAL_HOOK = essential_hook(
    "virtio_pci virtio_mmio virtio_blk virtio_scsi virtio_net sd_mod sr_mod ata_piix ata_generic ext4")
CUSTOMIZE_HOOK = customize_hook(None)

# cloud-init picks ENI first while ifupdown is installed (bullseye's cloud-init depends on it):
# name netplan alone, and let systemd-networkd (which netplan configures) run from the first boot.
NETPLAN_HOOK = r"""
set -e
printf 'system_info:\n  network:\n    renderers: [netplan]\n' > "$1/etc/cloud/cloud.cfg.d/91-virtdeck-netplan.cfg"
chroot "$1" systemctl enable systemd-networkd
"""

RECIPE_VERSION = 1


@dataclass(frozen=True)
class DiskRecipe:
    """One lab cloud image. ``arch`` is Debian's (amd64/arm64); ``boot`` 'bios+uefi' or 'uefi';
    ``os`` the inventory's OS name; ``default_user`` the image's cloud-init default user."""

    name: str
    suite: str
    arch: str
    boot: str
    os: str
    default_user: str = "debian"
    merged_usr: bool = True  # bookworm and later ship usr-is-merged; bullseye does not
    security: bool = True    # add <suite>-security to the sources
    # "ifupdown" (ENI), or "netplan" (systemd-networkd): cloud-init 20.4 (bullseye) renders a
    # v2 NIC matched by MAC without set-name into ENI under the config's key ("iface nic0"),
    # so ifup fails on the real name (ens2); netplan hands the MAC match to networkd
    network: str = "ifupdown"

    @property
    def guest_arch(self) -> str:
        """libvirt's name for the arch (x86_64 / aarch64)."""
        return {"amd64": "x86_64", "arm64": "aarch64"}[self.arch]

    def packages(self) -> list[str]:
        extra = ["usr-is-merged"] if self.merged_usr else []
        common = COMMON_PACKAGES
        if self.network == "netplan":
            common = [p for p in common if p not in ("ifupdown", "isc-dhcp-client")] + ["netplan.io"]
        return extra + common + ARCH_PACKAGES[self.arch]

    def body(self) -> dict:
        """Everything that decides the image's bytes; its hash keys the cache. (A field at its
        default is left out, so adding a field does not rebuild every cached image.)"""
        fields = asdict(self)
        if fields["network"] == "ifupdown":
            del fields["network"]
        else:
            fields["network_hook"] = NETPLAN_HOOK
        return {"version": RECIPE_VERSION, **fields, "packages": self.packages(),
                "mirror": MIRROR, "security": SECURITY_MIRROR, "dpkg": DPKG_OPTS,
                "essential_hook": ESSENTIAL_HOOK, "customize_hook": CUSTOMIZE_HOOK,
                "grub": [GRUB_MODULES, GRUB_PLATFORM_MODULES], "layout":
                [BIOS_START, BIOS_SECTORS, ESP_START, ESP_SECTORS, DISK_BYTES], "grub_cfg": grub_cfg(self, "X")}

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.body(), sort_keys=True).encode()).hexdigest()


RECIPES = {
    r.name: r for r in (
        DiskRecipe("debian12-gpt", "bookworm", "amd64", "bios+uefi", "debian12"),
        # bullseye-security (LTS) on the mirror lists kernels whose .deb is not there (404): the
        # point release in bullseye + bullseye-updates is used instead.
        DiskRecipe("debian11-gpt", "bullseye", "amd64", "bios+uefi", "debian11", merged_usr=False,
                   security=False, network="netplan"),
        DiskRecipe("debian12-arm64", "bookworm", "arm64", "uefi", "debian12"),
    )
}


@dataclass(frozen=True)
class DiskImage:
    """A built image in the cache: qcow2 path, its sha256, the recipe's facts."""

    recipe: DiskRecipe
    qcow2: Path
    sha256: str
    build_seconds: float
    built: bool

    @property
    def name(self) -> str:
        return self.recipe.name


def grub_cfg(r: DiskRecipe, kver: str) -> str:
    """/boot/grub/grub.cfg for kernel version ``kver``: serial + screen consoles, no menu wait."""
    if r.arch == "arm64":
        term, console = "", "console=ttyAMA0"
    else:
        # BIOS GRUB drives the UART itself; under UEFI the firmware's console already reaches it.
        term = ('if [ "$grub_platform" = pc ]; then\n  serial --unit=0 --speed=115200\n'
                "  terminal_input console serial\n  terminal_output console serial\nfi\n")
        console = "console=tty0 console=ttyS0,115200"
    return (f"set timeout=0\n{term}search --no-floppy --label rootfs --set=root\n"
            f"menuentry 'Debian ({r.suite}, {r.arch})' {{\n"
            f"  linux /boot/vmlinuz-{kver} root=LABEL=rootfs ro {console}\n"
            f"  initrd /boot/initrd.img-{kver}\n}}\n")


EARLY_CFG = ("search --no-floppy --label rootfs --set=root\nset prefix=($root)/boot/grub\n"
             "configfile ($root)/boot/grub/grub.cfg\n")


def install_bios_grub(disk: Path, boot_img: bytes, core_img: bytes, core_lba: int, room: int) -> None:
    """Write GRUB's BIOS boot code as ``grub-install`` does for a core.img embedded at sector
    ``core_lba`` (a BIOS boot partition of ``room`` sectors): boot.img into the MBR (keeping the
    protective partition table at 0x1b8-0x1ff), its kernel-sector field (0x5c) pointing at
    core.img, the boot-drive check replaced by NOPs (0x66, as grub-setup does for hard disks), and
    core.img's first blocklist (0x1f4 of its first sector) starting at ``core_lba + 1``.

    Raises LabError when boot.img is not 512 bytes or core.img does not fit in ``room``.
    """
    if len(boot_img) != SECTOR:
        raise LabError(f"GRUB boot.img is {len(boot_img)} bytes, expected 512")
    if len(core_img) > room * SECTOR:
        raise LabError(f"GRUB core.img ({len(core_img)} bytes) does not fit the BIOS boot partition")
    with open(disk, "r+b") as f:
        mbr = bytearray(f.read(SECTOR))
        new = bytearray(boot_img)
        new[0x1b8:0x200] = mbr[0x1b8:0x200]
        new[0x5c:0x64] = struct.pack("<Q", core_lba)
        new[0x66:0x68] = b"\x90\x90"
        core = bytearray(core_img)
        core[0x1f4:0x1fc] = struct.pack("<Q", core_lba + 1)
        f.seek(0)
        f.write(new)
        f.seek(core_lba * SECTOR)
        f.write(core)


def _mmdebstrap(r: DiskRecipe, rootfs: Path, logf: Path) -> None:
    argv = ["mmdebstrap", "--variant=apt", "--mode=root", f"--arch={r.arch}"]
    if r.merged_usr:
        argv.append("--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr")
    argv += ["--include=" + ",".join(r.packages()), *[f"--dpkgopt={o}" for o in DPKG_OPTS],
             "--essential-hook=" + ESSENTIAL_HOOK, "--customize-hook=" + CUSTOMIZE_HOOK,
             f"--customize-hook=echo {r.name} > \"$1/etc/hostname\"",
             *([f"--customize-hook={NETPLAN_HOOK}"] if r.network == "netplan" else []),
             "--aptopt=Acquire::Retries \"3\"", r.suite, str(rootfs),
             f"deb {MIRROR} {r.suite} main", f"deb {MIRROR} {r.suite}-updates main"]
    if r.security:
        argv.append(f"deb {SECURITY_MIRROR} {r.suite}-security main")
    proc = run(argv, check=False, timeout=3600)
    logf.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        lines = (proc.stderr + proc.stdout).strip().splitlines()
        errs = [x for x in lines if x.startswith("E: ")] or lines[-1:] or ["?"]
        hint = " — is binfmt_misc set up for qemu-user-static?" if r.arch != "amd64" else ""
        raise LabError(f"{r.name}: mmdebstrap failed: {errs[0]}{hint} (log: {logf})")


def _grub_image(rootfs: Path, platform: str, out: Path, prefix: str, work: Path) -> None:
    moddir = rootfs / "usr/lib/grub" / platform
    if not moddir.is_dir():
        raise LabError(f"the image has no GRUB modules for {platform} ({moddir})")
    early = work / f"early-{platform}.cfg"
    early.write_text(EARLY_CFG)
    fmt = {"i386-pc": "i386-pc", "x86_64-efi": "x86_64-efi", "arm64-efi": "arm64-efi"}[platform]
    run(["grub-mkimage", "-O", fmt, "-d", str(moddir), "-o", str(out), "-p", prefix, "-c", str(early),
         *GRUB_MODULES, *GRUB_PLATFORM_MODULES[platform]], what=f"grub-mkimage {platform}")


def assemble_disk(r: DiskRecipe, rootfs: Path, raw: Path, work: Path) -> None:
    """Lay out ``raw`` (GPT, ESP, ext4 root from ``rootfs``) and install GRUB; no loop device."""
    kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise LabError(f"{r.name}: no kernel in /boot")
    kver = kernels[-1].name.removeprefix("vmlinuz-")
    (rootfs / "boot/grub").mkdir(parents=True, exist_ok=True)
    (rootfs / "boot/grub/grub.cfg").write_text(grub_cfg(r, kver))
    run(["truncate", "-s", str(DISK_BYTES), str(raw)])
    last = DISK_BYTES // SECTOR - 34  # the backup GPT takes the last 33 sectors
    run(["sgdisk", "-o",
         "-n", f"1:{BIOS_START}:{BIOS_START + BIOS_SECTORS - 1}", "-t", "1:EF02", "-c", "1:bios",
         "-n", f"2:{ESP_START}:{ESP_START + ESP_SECTORS - 1}", "-t", "2:EF00", "-c", "2:esp",
         "-n", f"3:{ROOT_START}:{last}", "-t", "3:8300", "-c", "3:rootfs", str(raw)], what="sgdisk")
    root_kib = (last + 1 - ROOT_START) * SECTOR // 1024
    run(["mkfs.ext4", "-q", "-F", "-L", "rootfs", "-E", f"root_owner=0:0,offset={ROOT_START * SECTOR}",
         "-d", str(rootfs), str(raw), f"{root_kib}k"], what="mkfs.ext4", timeout=900)
    # ESP: removable-media path, found by fresh firmware NVRAM without a boot entry.
    esp = work / "esp.img"
    run(["mkfs.vfat", "-C", "-n", "ESP", str(esp), str(ESP_SECTORS * SECTOR // 1024)], what="mkfs.vfat")
    env_img = f"{esp}"
    run(["mmd", "-i", env_img, "::/EFI", "::/EFI/BOOT"], what="mmd")
    efi_platform, efi_name = (("arm64-efi", "BOOTAA64.EFI") if r.arch == "arm64"
                              else ("x86_64-efi", "BOOTX64.EFI"))
    efi = work / efi_name
    _grub_image(rootfs, efi_platform, efi, "", work)
    run(["mcopy", "-i", env_img, str(efi), f"::/EFI/BOOT/{efi_name}"], what="mcopy")
    with open(raw, "r+b") as f, open(esp, "rb") as src:
        f.seek(ESP_START * SECTOR)
        shutil.copyfileobj(src, f)
    if "bios" in r.boot:
        core = work / "core.img"
        _grub_image(rootfs, "i386-pc", core, "", work)
        boot_img = (rootfs / "usr/lib/grub/i386-pc/boot.img").read_bytes()
        install_bios_grub(raw, boot_img, core.read_bytes(), BIOS_START, BIOS_SECTORS)


def cached_image(r: DiskRecipe, cache: Path | None = None) -> DiskImage | None:
    """The cached image if it matches the current recipe and its files are intact, else None."""
    out = (cache or image_cache_dir()) / r.name
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("recipe") != r.hash():
        return None
    for fname, size in manifest.get("files", {}).items():
        p = out / fname
        if not p.is_file() or p.stat().st_size != size:
            return None
    return DiskImage(r, out / f"{r.name}.qcow2", manifest["sha256"], manifest.get("build_seconds", 0.0), False)


def build_image(r: DiskRecipe, cache: Path | None = None, log=print) -> DiskImage:
    """Build ``r`` from scratch into the cache (atomic rename at the end).

    Raises LabError naming the failing tool (mmdebstrap, sgdisk, mkfs.*, grub-mkimage, mtools,
    qemu-img); mmdebstrap's full log is kept in ``<cache>/<name>.build.log``.
    """
    cache = cache or image_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    for tool in ("mmdebstrap", "mkfs.ext4", "qemu-img", "sgdisk", "mkfs.vfat", "mcopy", "grub-mkimage"):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} is not installed; run `bash .ci/setup` as root")
    if r.arch != "amd64" and not Path(f"/proc/sys/fs/binfmt_misc/qemu-{r.guest_arch}").exists():
        raise LabError(f"{r.name}: binfmt_misc has no qemu-{r.guest_arch} entry, so {r.arch} programs cannot "
                       f"run here; `bash .ci/setup` as root mounts binfmt_misc and runs update-binfmts "
                       f"--enable qemu-{r.guest_arch} (qemu-user-static)")
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f".build-{r.name}-", dir=cache))
    try:
        rootfs = work / "rootfs"
        log(f"image {r.name}: mmdebstrap {r.suite}/{r.arch} ({len(r.packages())} packages) …")
        _mmdebstrap(r, rootfs, cache / f"{r.name}.build.log")
        log(f"image {r.name}: GPT disk, GRUB ({r.boot}), qemu-img convert …")
        raw = work / "disk.raw"
        assemble_disk(r, rootfs, raw, work)
        out = work / r.name
        out.mkdir()
        qcow2 = out / f"{r.name}.qcow2"
        run(["qemu-img", "convert", "-c", "-O", "qcow2", "-o", "compression_type=zstd", str(raw), str(qcow2)],
            what="qemu-img convert", timeout=900)
        files = {qcow2.name: qcow2.stat().st_size}
        seconds = round(time.monotonic() - t0, 1)
        (out / "manifest.json").write_text(json.dumps(
            {"recipe": r.hash(), "sha256": sha256_file(qcow2), "files": files, "build_seconds": seconds,
             "boot": r.boot, "arch": r.guest_arch, "os": r.os, "default_user": r.default_user,
             "recipe_body": r.body()}, indent=2) + "\n")
        final = cache / r.name
        if final.exists():
            old = cache / f".old-{r.name}-{os.getpid()}"
            final.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        out.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    img = cached_image(r, cache)
    if img is None:
        raise LabError(f"{r.name}: the built image did not verify in the cache")
    return DiskImage(r, img.qcow2, img.sha256, img.build_seconds, True)


def ensure_image(name: str, cache: Path | None = None, log=print, force: bool = False) -> DiskImage:
    """The cached image ``name`` (a key of :data:`RECIPES`), built first when missing, damaged or
    from an older recipe. Builds of one image are serialized by an flock on
    ``<cache>/.lock-<name>``; different images build in parallel.

    Raises LabError for an unknown name (listing the known ones) or a failed build.
    """
    if name not in RECIPES:
        raise LabError(f"image must be one of {', '.join(RECIPES)}, not {name!r}")
    r = RECIPES[name]
    if not force and (img := cached_image(r, cache)) is not None:
        return img
    cache = cache or image_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    fd = os.open(cache / f".lock-{name}", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"image {name}: another build is running; waiting for it …")
            fcntl.flock(fd, fcntl.LOCK_EX)
            force = False
        if not force and (img := cached_image(r, cache)) is not None:
            return img
        return build_image(r, cache, log=log)
    finally:
        os.close(fd)


if __name__ == "__main__":  # python -m virtdeck.backends.lab.image_disk NAME... [--force]
    import sys
    for n in [a for a in sys.argv[1:] if not a.startswith("--")] or list(RECIPES):
        img = ensure_image(n, force="--force" in sys.argv)
        print(json.dumps({"name": n, "sha256": img.sha256, "built": img.built,
                          "seconds": img.build_seconds, "qcow2": str(img.qcow2)}), flush=True)
