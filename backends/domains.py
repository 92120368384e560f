"""The one door for libvirt domain changes, and the one reader of a domain's definition.

Services never touch libvirt: they call these functions with a ``virConnect`` (``session.libvirt
(host)``) or a domain object they got from :func:`lookup`, and get :class:`HostError` (or its
:class:`DomainGone`) back, worded once by :func:`host_error`: ``"<host>: <action> <name>: <libvirt's
message>"``.

- lookup / define / start / shutdown (ACPI) / destroy / undefine (with NVRAM, managed save and
  snapshot metadata, :data:`UNDEFINE_FLAGS`, written once) / set the ``<virtdeck:instance>``
  metadata / attach and detach a device / wait for a state;
- :func:`parse` and :class:`DomainFacts` (from :mod:`backends.domain_facts`, the one reader the
  live model uses too): every fact read from a domain XML (sizes, metadata, anti-affinity group,
  arch, disks, NICs), memory KiB → MiB there, once;
- :func:`host_capacity`: what placement counts on a host (create, resize and move alike).

Which RAM figure placement counts (decided here, for every caller): a domain's PERSISTENT
``<currentMemory>`` (its configured size; ``<memory>`` when absent) from the inactive XML — not
``dom.info()``'s live balloon, which for a running guest sits at the ``<memory>`` ceiling until
the guest's balloon driver inflates early in boot, so it over-counts VMs created with growth room
(provision_checks.growth_limits) and flips as guests boot. vCPUs likewise: ``<vcpu current>`` (the
size), not the ``<vcpu>`` growth ceiling.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Iterable

import libvirt

from ..console.errors import HostError
from . import domain_xml as dx
from .domain_facts import DomainFacts, parse

# libvirt prints every error to stderr by default; virtdeck reports them itself, as one line.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

#: Undefine removes what libvirt keeps beside the definition, so the name can be reused at once.
UNDEFINE_FLAGS = (libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                  | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
# Older drivers (and the test driver) refuse flags they do not know; retried without these.
_UNDEFINE_OPTIONAL = libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA

CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG
LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE


class DomainGone(HostError):
    """The domain does not exist (any more) on that host (libvirt's VIR_ERR_NO_DOMAIN)."""


# ---------------------------------------------------------------------------------------------
# Errors, worded once


def message(exc: BaseException) -> str:
    """libvirt's own message of ``exc``, without its trailing period."""
    if isinstance(exc, libvirt.libvirtError):
        return (exc.get_error_message() or str(exc)).strip().rstrip(".")
    return str(exc)


def is_libvirt_error(exc: BaseException) -> bool:
    """True for a libvirt-python error (so callers need not import libvirt to ask)."""
    return isinstance(exc, libvirt.libvirtError)


def host_error(exc: BaseException, host: str | None, action: str) -> HostError:
    """One line for a libvirt failure: ``"<host>: <action>: <libvirt's message>"``; a missing
    domain gives :class:`DomainGone`. ``action`` says what was tried (``"start web1"``)."""
    where = host or "libvirt"
    text = f"{where}: {action}: {message(exc)}"
    if isinstance(exc, libvirt.libvirtError) and exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
        err: HostError = DomainGone(text)
    else:
        err = HostError(text)
    err.libvirt_message = message(exc)  # for callers that word the line themselves (see why())
    return err


def why(exc: BaseException) -> str:
    """libvirt's own message inside a :func:`host_error` HostError (a libvirt error's message; any
    other exception's text), for a caller that words the line itself."""
    return getattr(exc, "libvirt_message", None) or message(exc)


def _call(host: str | None, action: str, fn, *args):
    try:
        return fn(*args)
    except libvirt.libvirtError as exc:
        raise host_error(exc, host, action) from None


# ---------------------------------------------------------------------------------------------
# Lookup and lifecycle


_STATES = ("nostate", "running", "blocked", "paused", "shutdown", "shutoff", "crashed", "pmsuspended")


def state(dom, host: str | None = None) -> str:
    """The domain's state in words (one of console.model.VM_STATES). Raises HostError."""
    code = _call(host, f"reading the state of {dom.name()}", dom.state)[0]
    return _STATES[code] if 0 <= code < len(_STATES) else "nostate"


def lookup(conn, host: str, name: str):
    """The domain named ``name`` on ``host``, or None when there is none. Raises HostError."""
    try:
        return conn.lookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise HostError(f"{host}: looking up {name}: {message(exc)}") from None


def lookup_uuid(conn, host: str, uuid: str):
    """The domain with libvirt UUID ``uuid`` on ``host``, or None. Raises HostError."""
    try:
        return conn.lookupByUUIDString(uuid)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise HostError(f"{host}: looking up {uuid}: {message(exc)}") from None


def define(conn, host: str, xml: str):
    """``defineXML``: the persistent domain (new, or an update of the same UUID). Raises HostError
    ("<host>: defineXML: …")."""
    return _call(host, "defineXML", conn.defineXML, xml)


def start(dom, host: str) -> None:
    """Boot a defined domain (``create()``). Raises HostError ("<host>: start: …")."""
    _call(host, "start", dom.create)


def destroy(dom, host: str, missing_ok: bool = True) -> None:
    """Force the domain off if it runs (a domain already gone is fine with ``missing_ok``).
    Raises HostError."""
    try:
        if dom.isActive():
            dom.destroy()
    except libvirt.libvirtError as exc:
        if missing_ok and exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return
        raise host_error(exc, host, f"destroy {dom.name()}") from None


def undefine(dom, host: str, name: str | None = None, missing_ok: bool = True,
             keep_nvram: bool = False) -> None:
    """Remove the persistent definition with :data:`UNDEFINE_FLAGS` (NVRAM, managed save, snapshot
    and checkpoint metadata; drivers that do not know the optional ones are asked without them).
    ``keep_nvram``: leave the NVRAM file (a move retires the source definition only). A transient
    or already undefined domain is fine with ``missing_ok``. Raises HostError ("<host>: undefine
    <name>: …")."""
    label = name or dom.name()
    flags = UNDEFINE_FLAGS & ~libvirt.VIR_DOMAIN_UNDEFINE_NVRAM if keep_nvram else UNDEFINE_FLAGS
    optional = _UNDEFINE_OPTIONAL & ~libvirt.VIR_DOMAIN_UNDEFINE_NVRAM if keep_nvram else _UNDEFINE_OPTIONAL
    try:
        try:
            dom.undefineFlags(flags | optional)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
                raise
            dom.undefineFlags(flags & ~_UNDEFINE_OPTIONAL)
    except libvirt.libvirtError as exc:
        if missing_ok and exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return
        raise host_error(exc, host, f"undefine {label}") from None


def remove(conn, host: str, uuid: str, name: str) -> None:
    """Destroy and undefine the domain with OUR ``uuid`` (a same-named domain someone else defined
    is never touched); nothing there is fine. The undo of a define. Raises HostError."""
    dom = lookup_uuid(conn, host, uuid)
    if dom is None:
        return
    try:
        destroy(dom, host)
    except HostError:
        pass  # undefine below says what is wrong, if anything
    undefine(dom, host, name)


def wait_state(dom, states: Iterable[str], timeout: float, poll: float = 0.2) -> bool:
    """Poll until the domain is in one of ``states`` (seconds); True if it got there. A domain
    that vanished counts as ``shutoff``."""
    want = set(states)
    deadline = time.monotonic() + timeout
    while True:
        try:
            st = state(dom)
        except DomainGone:
            st = "shutoff"
        if st in want:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


def is_active(dom, host: str | None = None) -> bool:
    """True while the domain runs (or is paused): it holds host RAM. Raises HostError (DomainGone)."""
    return bool(_call(host, f"reading the state of {dom.name()}", dom.isActive))


def is_persistent(dom, host: str | None = None) -> bool:
    """True for a defined (not transient) domain. Raises HostError (DomainGone)."""
    return bool(_call(host, f"reading {dom.name()}", dom.isPersistent))


def _acpi(host: str, action: str, call, flag: int) -> None:
    """Press the ACPI power button (``flag``); a driver without that method gets its default."""
    try:
        call(flag)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
            raise host_error(exc, host, action) from None
        _call(host, action, call, 0)


def shutdown(dom, host: str) -> None:
    """Ask the guest to power off (ACPI power button); returns at once. Raises HostError."""
    _acpi(host, f"shutdown {dom.name()}", dom.shutdownFlags, libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)


def reboot(dom, host: str, hard: bool = False) -> None:
    """Reboot: ACPI request to the guest, or ``hard`` = reset (the reset button, no guest
    cooperation). Raises HostError."""
    if hard:
        _call(host, f"reset {dom.name()}", dom.reset, 0)
    else:
        _acpi(host, f"reboot {dom.name()}", dom.reboot, libvirt.VIR_DOMAIN_REBOOT_ACPI_POWER_BTN)


class PowerWatch:
    """What one domain did after a power request, from libvirt's events (pushed over the host's
    connection, delivered on the "libvirt-events" thread, backends.ioloop): ``went_down`` is
    set by a lifecycle SHUTDOWN or STOPPED event (the guest acted on the button), ``came_back``
    by a REBOOT event (QEMU reset the machine: the guest rebooted, or libvirt restarted it after
    the shutdown an ACPI reboot asks for). ``at``: ``time.monotonic()`` of each, for seconds.
    Use as a context manager (the callbacks are deregistered on exit)."""

    def __init__(self, dom, host: str):
        import threading

        from .ioloop import start_libvirt_events
        start_libvirt_events()  # idempotent; a connection without SSH (test driver) has none yet
        self.went_down, self.came_back = threading.Event(), threading.Event()
        self.at: dict[str, float] = {}
        self._conn, self._ids = dom.connect(), []
        try:
            self._ids.append(self._conn.domainEventRegisterAny(
                dom, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._lifecycle, None))
            self._ids.append(self._conn.domainEventRegisterAny(
                dom, libvirt.VIR_DOMAIN_EVENT_ID_REBOOT, self._reboot, None))
        except libvirt.libvirtError as exc:
            self.close()
            raise host_error(exc, host, f"watching {dom.name()}") from None

    def _lifecycle(self, _conn, _dom, event, _detail, _opaque) -> None:
        if event in (libvirt.VIR_DOMAIN_EVENT_SHUTDOWN, libvirt.VIR_DOMAIN_EVENT_STOPPED):
            self.at.setdefault("down", time.monotonic())
            self.went_down.set()

    def _reboot(self, _conn, _dom, _opaque) -> None:
        self.at.setdefault("back", time.monotonic())
        self.came_back.set()

    def close(self) -> None:
        """Deregister the callbacks (idempotent, never raises)."""
        while self._ids:
            try:
                self._conn.domainEventDeregisterAny(self._ids.pop())
            except libvirt.libvirtError:
                pass

    def __enter__(self) -> "PowerWatch":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def suspend(dom, host: str) -> None:
    """Pause the domain's vCPUs (it keeps its memory). Raises HostError."""
    _call(host, f"suspend {dom.name()}", dom.suspend)


def resume(dom, host: str) -> None:
    """Resume a paused domain. Raises HostError."""
    _call(host, f"resume {dom.name()}", dom.resume)


def wakeup(dom, host: str) -> None:
    """Wake a guest from its own suspend (pmsuspended). Raises HostError."""
    _call(host, f"wake {dom.name()}", dom.pMWakeup, 0)


def set_vcpus(dom, host: str, vcpus: int, config: bool = True, live: bool = False,
              maximum: bool = False) -> None:
    """Set the vCPU count (whole vCPUs) in the config and/or the running domain (hot-plug up to
    its ``<vcpu>`` maximum); ``maximum``: set that ceiling instead (config only). Raises HostError
    ("<host>: set vCPUs of <name>: …")."""
    flags = (CONFIG if config else 0) | (LIVE if live else 0) | (libvirt.VIR_DOMAIN_VCPU_MAXIMUM if maximum else 0)
    _call(host, f"set vCPUs of {dom.name()}", dom.setVcpusFlags, vcpus, flags)


def set_memory(dom, host: str, memory_mib: int, config: bool = True, live: bool = False,
               maximum: bool = False) -> None:
    """Set ``<currentMemory>`` (MiB; libvirt takes KiB, converted here) in the config and/or the
    running domain (balloon, up to ``<memory>``); ``maximum``: set ``<memory>`` instead (config
    only). Raises HostError ("<host>: set memory of <name>: …")."""
    flags = (CONFIG if config else 0) | (LIVE if live else 0) | (libvirt.VIR_DOMAIN_MEM_MAXIMUM if maximum else 0)
    _call(host, f"set memory of {dom.name()}", dom.setMemoryFlags, memory_mib * 1024, flags)


def update_device(dom, host: str, device_xml: str, live: bool = True, config: bool = False) -> None:
    """Change a device in place (``updateDeviceFlags``: e.g. a cdrom's media). Raises HostError."""
    flags = (CONFIG if config else 0) | (LIVE if live else 0)
    _call(host, f"update a device of {dom.name()}", dom.updateDeviceFlags, device_xml, flags)


def list_all(conn, host: str) -> list:
    """Every domain object on ``host`` (defined and transient). Raises HostError."""
    return _call(host, "listing domains", conn.listAllDomains, 0)


def set_instance_meta(dom, host: str, meta: dx.InstanceMeta, live: bool) -> None:
    """Replace the domain's ``<virtdeck:instance>`` metadata with ``meta`` in its config (and in
    the running domain with ``live``). libvirt adds the namespace itself and refuses an element
    that declares it, hence :func:`domain_xml.metadata_xml`'s bare element. Raises HostError."""
    flags = CONFIG | (LIVE if live else 0)
    _call(host, f"setting {dom.name()}'s metadata", dom.setMetadata,
          libvirt.VIR_DOMAIN_METADATA_ELEMENT, dx.metadata_xml(meta), dx.PREFIX, dx.NS, flags)


def attach_device(dom, host: str, device_xml: str, config: bool = True, live: bool = False) -> None:
    """Attach a device (``<interface>``, ``<disk>`` …) to the config and/or the running domain.
    Raises HostError."""
    flags = (CONFIG if config else 0) | (LIVE if live else 0)
    _call(host, f"attach to {dom.name()}", dom.attachDeviceFlags, device_xml, flags)


def detach_device(dom, host: str, device_xml: str, config: bool = True, live: bool = False) -> None:
    """Detach a device from the config and/or the running domain (libvirt matches a NIC by MAC;
    a live detach asks the guest and waits ~5 s). Raises HostError (DomainGone if it vanished)."""
    flags = (CONFIG if config else 0) | (LIVE if live else 0)
    _call(host, f"detach from {dom.name()}", dom.detachDeviceFlags, device_xml, flags)


def xml(dom, host: str | None = None, inactive: bool = False, secure: bool = False) -> str:
    """The domain's XML: live (default) or the persistent config (``inactive``); ``secure``
    includes secrets (needed to copy a definition). Raises HostError (DomainGone)."""
    flags = (libvirt.VIR_DOMAIN_XML_INACTIVE if inactive else 0) | (libvirt.VIR_DOMAIN_XML_SECURE if secure else 0)
    return _call(host, f"reading {dom.name()}", dom.XMLDesc, flags)


# ---------------------------------------------------------------------------------------------
# The one reader of a domain definition


def facts(dom, host: str | None = None, inactive: bool = False) -> DomainFacts:
    """:class:`DomainFacts` of a domain object (``inactive``: its persistent config).
    Raises HostError (DomainGone when it vanished; an unreadable XML too)."""
    text = xml(dom, host, inactive=inactive)
    try:
        return parse(text)
    except (ET.ParseError, ValueError) as exc:
        raise HostError(f"{host or 'libvirt'}: {dom.name()}'s XML is not readable: {exc}") from None


# ---------------------------------------------------------------------------------------------
# The one host-capacity reader


@dataclass(frozen=True)
class Capacity:
    """A hypervisor as placement sees it: ``arch``, ``cores`` (logical CPUs, ``getInfo()``),
    ``ram_total_mib`` (``getInfo()``, MiB), ``ram_free_mib`` (``getFreeMemory()``, bytes → MiB)
    and ``domains``: every defined domain's persistent facts (see the module doc for which
    vCPU/RAM figures count), minus the excluded one."""

    arch: str
    cores: int
    ram_total_mib: int
    ram_free_mib: int
    domains: tuple[DomainFacts, ...]

    @property
    def alloc_vcpus(self) -> int:
        """vCPUs the host's domains are sized to (``<vcpu current>``)."""
        return sum(d.vcpus for d in self.domains)

    @property
    def alloc_ram_mib(self) -> int:
        """RAM in MiB the host's domains are sized to (persistent ``<currentMemory>``)."""
        return sum(d.memory_mib for d in self.domains)


def host_capacity(conn, host: str, exclude_uuid: str | None = None, workers: int = 8) -> Capacity:
    """Read :class:`Capacity` of ``host``: one ``getInfo``, one ``getFreeMemory`` and every
    domain's inactive XML (a few in flight: libvirt-python releases the GIL and one connection
    carries concurrent RPCs; ~1000 domains in well under a second). A domain undefined meanwhile
    is skipped; ``exclude_uuid`` (the VM being resized or moved) is left out. Raises HostError."""
    import concurrent.futures

    def one(dom):
        try:
            if exclude_uuid and dom.UUIDString() == exclude_uuid:
                return None
            return parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), keep_text=False)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None  # undefined meanwhile
            raise

    try:
        info = conn.getInfo()
        free = int(conn.getFreeMemory() // 1048576)
        doms = conn.listAllDomains(0)
        if len(doms) < 16:
            briefs = [one(d) for d in doms]
        else:
            with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
                briefs = list(pool.map(one, doms))
    except libvirt.libvirtError as exc:
        raise HostError(f"{host}: {message(exc)}") from None
    return Capacity(arch=info[0], cores=int(info[2]), ram_total_mib=int(info[1]), ram_free_mib=free,
                    domains=tuple(b for b in briefs if b is not None))


def list_vms(conn, host: str, want_cpu: bool = False) -> list:
    """Every domain on ``host`` as :class:`console.model.Vm` (:func:`hypervisor.list_domains`: one
    bulk stats call), sized as :func:`host_capacity` counts them (persistent ``<vcpu current>``
    and ``<currentMemory>``, MiB). A domain undefined between the listing and its XML read makes
    it list again (3 tries). Raises HostError ("<host>: <libvirt's message>")."""
    from . import hypervisor

    for attempt in range(3):
        try:
            return list(hypervisor.list_domains(conn, host, want_cpu=want_cpu).vms)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN or attempt == 2:
                raise HostError(f"{host}: {message(exc)}") from None
    return []
