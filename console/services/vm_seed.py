"""A VM's cloud-config: read its NoCloud seed ISO, validate and replace its user-data."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from dataclasses import replace

from ...backends import domains, storage
from ..errors import HostError, ValidationError, VirtdeckError
from .vm_lookup import DomainFacts, OpResult, VmStateError, _find, _Op, _run_verb, domain_facts, locate


# ---------------------------------------------------------------------------------------------
# Cloud-config (the seed ISO)


def _download(conn, vol, host: str, what: str) -> bytes:
    """A volume's whole content through the storage API (see storage.download_volume)."""
    buf = io.BytesIO()
    storage.download_volume(conn, host, vol, buf, f"reading {what}")
    return buf.getvalue()


def _seed_volume(conn, host: str, facts: DomainFacts):
    for d in facts.disks:
        if d.device == "cdrom" and d.source:
            vol = storage.volume_at(conn, host, d.source)
            if vol is not None:
                return vol
    raise VmStateError(f"{facts.name} on {host} has no NoCloud seed volume (no cdrom from a storage pool)")


def read_seed(session, name: str, host: str | None = None) -> tuple[str, dict[str, str]]:
    """The documents of the VM's seed ISO: ``(host, {"meta-data", "user-data", "network-config"})``,
    downloaded through the storage API. Raises VmNotFound, VmStateError (no seed), HostError."""
    from ...backends import seed as seedmod

    h, dom = locate(session, name, host)
    conn = session.libvirt(h)
    try:
        facts = domain_facts(dom, inactive=domains.is_persistent(dom, h))
        vol = _seed_volume(conn, h, facts)
        data = _download(conn, vol, h, f"seed volume {vol.name()}")
    except HostError as exc:
        raise HostError(f"{h}: reading {name}'s seed: {domains.why(exc)}") from None
    try:
        return h, seedmod.read_nocloud_iso(data)
    except Exception as exc:  # noqa: BLE001 - pycdlib raises its own types
        raise HostError(f"{h}: {name}'s seed volume is not a readable ISO: {exc}") from None


def get_user_data(session, name: str, host: str | None = None) -> str:
    """The VM's current cloud-init user-data (text), from its seed ISO."""
    return read_seed(session, name, host)[1].get("user-data", "#cloud-config\n")


def validate_user_data(text: str) -> dict:
    """Check an edited user-data document: it must start with ``#cloud-config``, parse as a YAML
    mapping, and hold no clear-text password (see :func:`console.cloudinit.parse_extra_user_data`).
    Returns the parsed mapping; raises ValidationError("user-data", …) with the YAML line."""
    from .. import cloudinit

    if not isinstance(text, str) or not text.lstrip().startswith("#cloud-config"):
        raise ValidationError("user-data", "must start with '#cloud-config' (a cloud-config YAML document)")
    if len(text.encode()) > 64 * 1024:
        raise ValidationError("user-data", "at most 64 KiB")
    doc = cloudinit.load_yaml(text, "user-data")
    if not isinstance(doc, dict):
        raise ValidationError("user-data", "must be a YAML mapping (key: value), not empty")
    if "users" in doc and not isinstance(doc["users"], list):
        raise ValidationError("user-data", "users must be a list")
    cloudinit._refuse_clear_passwords(doc, "user-data")  # the wizard's own rule, reused
    return doc


def _reinsert_cdrom(dom, host: str, path: str) -> None:
    """Eject the running domain's cdrom whose source is ``path`` and insert ``path`` again, so
    qemu opens the file anew (:func:`domains.update_device` live, twice). Raises HostError."""
    root = ET.fromstring(domains.xml(dom, host))
    for disk in root.findall("devices/disk"):
        src = disk.find("source")
        if disk.get("device") != "cdrom" or src is None or src.get("file") != path:
            continue
        for el in ("alias", "address", "backingStore"):
            for child in disk.findall(el):
                disk.remove(child)
        full = ET.tostring(disk, encoding="unicode")
        disk.remove(src)
        empty = ET.tostring(disk, encoding="unicode")
        domains.update_device(dom, host, empty)
        domains.update_device(dom, host, full)
        return


def edit_config(session, name: str, user_data: str, host: str | None = None) -> OpResult:
    """Replace the VM's cloud-init user-data: validate it, rebuild the NoCloud seed ISO with a NEW
    instance-id (so cloud-init applies it at the next boot) keeping the hostname and
    network-config, and put it in place of the old seed volume (same name and path). The
    domain's ``<virtdeck:seed>`` metadata follows when it held the old instance-id.

    A running VM keeps reading the old seed until it reboots (the message says so). If the new
    volume cannot be written the old seed is put back. Audit details carry instance-ids and the
    user-data's sha256, never its text. Same text as now → noop.
    """
    import hashlib

    import yaml

    from ...backends import domain_xml as dx
    from ...backends import seed as seedmod
    from .. import cloudinit

    validate_user_data(user_data)

    def body(op: _Op) -> OpResult:
        dom = _find(op, session, host)
        conn = session.libvirt(op.host)
        facts = domain_facts(dom, inactive=domains.is_persistent(dom, op.host))
        vol = _seed_volume(conn, op.host, facts)
        vname = vol.name()
        pool = storage.pool_of(vol, op.host)
        old = _download(conn, vol, op.host, f"seed volume {vname}")
        docs = seedmod.read_nocloud_iso(old)
        if docs.get("user-data") == user_data:
            return op.result("noop", f"{name}'s user-data is unchanged; the seed was left as it is")
        meta = yaml.safe_load(docs.get("meta-data") or "") or {}
        old_iid = str(meta.get("instance-id") or "")
        hostname = str(meta.get("local-hostname") or name)
        new_iid = cloudinit.new_instance_id()
        iso = seedmod.build_nocloud_iso(cloudinit.build_meta_data(new_iid, hostname), user_data,
                                        docs.get("network-config"))
        op.details.update(seed_volume=vname, instance_id={"from": old_iid, "to": new_iid},
                          user_data_sha256=hashlib.sha256(user_data.encode()).hexdigest())
        storage.delete_volume(conn, op.host, pool, vname)
        try:
            storage.upload_volume(conn, op.host, pool, vname, iso, fmt="raw")
        except BaseException:
            try:
                storage.upload_volume(conn, op.host, pool, vname, old, fmt="raw")
            except VirtdeckError:
                pass
            raise
        active = domains.is_active(dom, op.host)
        if active:
            # qemu still holds the old file open (a guest reboot keeps the same qemu process):
            # eject and re-insert the cdrom so the running VM reads the new seed at its next boot.
            _reinsert_cdrom(dom, op.host, vol.path())
            op.details["media_changed"] = True
        meta_el = dx.parse_metadata(domains.xml(dom, op.host, inactive=True))
        if meta_el is not None and old_iid and meta_el.seed == old_iid:
            domains.set_instance_meta(dom, op.host, replace(meta_el, seed=new_iid), live=active)
        when = "at its next boot" if active else "when it starts"
        return op.result("ok", f"{name} on {op.host}: new seed with instance-id {new_iid}; cloud-init applies "
                         f"the new user-data {when}")
    return _run_verb("vm.edit-config", name, body)
