"""Placement: which hypervisor gets a new VM, and why every other host did not.

:func:`place` is a pure function: facts in (one :class:`HostFacts` per candidate host, the
:class:`PlacementRequest`, the allocation ratios), a :class:`Placement` out that names the chosen
host and gives, for EVERY host, chosen or refused and the reason(s). No I/O, no clock.

Filters (a host failing any of them is refused, with every failing reason listed):

- ``enabled``       the inventory's ``hosts[].enabled`` (``host disable``: its reason is shown)
- ``reachable``     the console could talk to its libvirt when the facts were gathered
- ``pinned``        the operator pinned another host
- ``arch``          the host runs the template's arch (libvirt capabilities ``<guest><arch>``,
                    ``guest_arches``): natively (the host's own arch, KVM or TCG as the inventory
                    says) or emulated (another arch, TCG only: ~10x slower), which is refused unless
                    the host (``allow_emulation``) or the request allows it; without
                    ``guest_arches`` the host arch must equal the template's
- ``anti-affinity`` the host already holds a member of the request's anti-affinity group
- ``physnet``       the host has a bridge mapping for every physnet the VM's provider networks need
                    (overlay networks need none; mappings come from OVS
                    ``external_ids:ovn-bridge-mappings``)
- ``vcpus``         allocated vCPUs + request <= cores × cpu_ratio (whole vCPUs, never MHz)
- ``ram``           allocated RAM + request <= total RAM × ram_ratio (MiB), and
                    the host's free RAM (libvirt ``getFreeMemory``) covers the request
- ``pressure``      measured load (:attr:`HostFacts.cpu_load_pct`, mean over
                    ``cpu_load_span_s``; :attr:`HostFacts.ram_used_pct`) at or under the
                    ``cpu_threshold`` / ``ram_threshold`` percent given to :func:`place`; a host
                    without a figure is not refused for it (no figure is not a pressure)

Weigher over the hosts that pass: ``spread`` (default) picks the host with the most headroom
left after placing the VM; ``pack`` the least. Headroom = mean of the free vCPU fraction and the
free RAM fraction (allocation-based, after the request), and, where the host has figures, the
idle CPU fraction (1 - measured CPU %) and the free RAM fraction measured (1 - used RAM %): a
host that is allocated lightly but busy scores lower. Ties are broken by host name. The reason
of each passing host names the figures its score used.

Concurrent creates: :class:`ReservationLedger` holds a claim (host, vCPUs, RAM) from placement
until the create has defined and started the domain or has failed. Placement through the ledger
adds the claims to each host's allocations, so two creates in one process never oversubscribe a
host even though both read facts before either defined its domain. A claim released after a
caller's facts were read is still counted for that caller (``facts_time``): the domain it stood
for may be missing from the facts. Another process (a second console) is covered one level up:
the provisioning service re-checks the chosen host under that host's placement lock
(:mod:`backends.hostlock`, ``flock`` on the hypervisor) and holds it until the domain is defined.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, replace
from typing import Iterable

WEIGHERS = ("spread", "pack")


@dataclass(frozen=True)
class HostFacts:
    """What the scheduler knows of one hypervisor.

    Units: RAM in MiB, vCPUs/cores as whole numbers. ``cores`` is the host's logical CPU count
    (libvirt ``getInfo()[2]``). ``alloc_vcpus``/``alloc_ram_mib`` sum every domain defined on the
    host (running or not: a stopped VM comes back). ``ram_free_mib`` is the host's actual free
    memory. ``physnets`` are the physnet names of the host's bridge mappings. ``refusals`` are
    reasons the caller found itself ("template: volume … missing"), listed after the filters'.
    For an unreachable host only ``name``/``enabled``/``reachable``/``error`` matter.
    """

    name: str
    enabled: bool = True
    reachable: bool = True
    arch: str | None = "x86_64"
    cores: int = 0
    ram_total_mib: int = 0
    ram_free_mib: int = 0
    alloc_vcpus: int = 0
    alloc_ram_mib: int = 0
    physnets: frozenset[str] = frozenset()
    # why the bridge mappings could not be read (OVS down or not readable by the operator);
    # ``physnets`` is then empty, and a provider network's refusal says this instead of "none"
    physnets_error: str | None = None
    error: str | None = None
    refusals: tuple[str, ...] = ()
    disabled_reason: str | None = None  # the inventory's hosts[].disabled_reason (maintenance)
    # guest arch -> libvirt domain types offered for it (("x86_64", ("qemu", "kvm")), ...), from
    # the capabilities; None = not read (then only the host's own arch is assumed)
    guest_arches: tuple[tuple[str, tuple[str, ...]], ...] | None = None
    allow_emulation: bool = False  # the host accepts guests of a foreign arch (TCG)
    # measured load (console.metrics): CPU % (mean over cpu_load_span_s seconds, from
    # cpu_load_source: "node" or "guests") and RAM in use, %; None = no figure
    cpu_load_pct: float | None = None
    cpu_load_span_s: float = 0.0
    cpu_load_source: str = "node"
    ram_used_pct: float | None = None
    # the inventory's [metrics] thresholds, %, used when place() is given none
    cpu_threshold: float | None = None
    ram_threshold: float | None = None


@dataclass(frozen=True)
class PlacementRequest:
    """What the VM needs. ``physnets``: physnets its provider networks need (none for overlay).

    ``anti_affinity_group``: group name; ``group_hosts``: hosts already holding a member of it.
    ``pinned_host``: only this host may be chosen (it still has to pass every filter).
    """

    vcpus: int
    ram_mib: int
    arch: str = "x86_64"
    physnets: frozenset[str] = frozenset()
    allow_emulation: bool = False  # a foreign-arch host (TCG emulation) may be chosen
    anti_affinity_group: str | None = None
    group_hosts: frozenset[str] = frozenset()
    pinned_host: str | None = None


@dataclass(frozen=True)
class HostVerdict:
    """One row of the placement table.

    ``chosen``: this host gets the VM. ``refused``: a filter refused it; ``reasons`` then lists
    every failing filter as "filter: why". A host that passes but loses to another has
    ``refused=False, chosen=False`` and a reason saying so. ``score`` is the headroom after
    placement (0..1, higher = emptier), None when refused. vCPU/RAM figures include claims.
    """

    host: str
    chosen: bool
    refused: bool
    reasons: tuple[str, ...]
    score: float | None = None
    vcpus_used: int | None = None
    vcpus_capacity: int | None = None
    ram_used_mib: int | None = None
    ram_capacity_mib: int | None = None
    cpu_load_pct: float | None = None
    ram_used_pct: float | None = None

    @property
    def summary(self) -> str:
        """The reasons as one line."""
        return "; ".join(self.reasons)


@dataclass(frozen=True)
class Placement:
    """The outcome: ``host`` (None when no host fits), one verdict per candidate, in input order."""

    host: str | None
    verdicts: tuple[HostVerdict, ...]
    weigher: str = "spread"

    @property
    def ok(self) -> bool:
        return self.host is not None

    def verdict(self, host: str) -> HostVerdict:
        for v in self.verdicts:
            if v.host == host:
                return v
        raise KeyError(host)

    def explain(self) -> str:
        """Why no host fits (or which one was chosen), one line per host."""
        if not self.verdicts:
            return "no hypervisors in the inventory"
        head = f"chosen: {self.host}" if self.host else "no host can take this VM"
        return head + "\n" + "\n".join(
            f"  {v.host}: {'chosen' if v.chosen else 'refused' if v.refused else 'passed'} — {v.summary}"
            for v in self.verdicts)

    def as_rows(self) -> list[dict]:
        """JSON-ready rows: host, verdict ("chosen" | "refused" | "passed"), reasons, score, usage."""
        return [{
            "host": v.host,
            "verdict": "chosen" if v.chosen else "refused" if v.refused else "passed",
            "reasons": list(v.reasons),
            "score": None if v.score is None else round(v.score, 4),
            "vcpus": None if v.vcpus_capacity is None else f"{v.vcpus_used}/{v.vcpus_capacity}",
            "ram_mib": None if v.ram_capacity_mib is None else f"{v.ram_used_mib}/{v.ram_capacity_mib}",
            "cpu_load_pct": None if v.cpu_load_pct is None else round(v.cpu_load_pct, 1),
            "ram_used_pct": None if v.ram_used_pct is None else round(v.ram_used_pct, 1),
        } for v in self.verdicts]


def _fmt_ratio(x: float) -> str:
    return f"{x:g}"


def _span(seconds: float) -> str:
    """A window in words: "5 min", "40 s"."""
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _cpu_figure(h: HostFacts) -> str:
    """ "CPU 82 % over 5 min" (guests: "guest CPU …")."""
    what = "guest CPU" if h.cpu_load_source == "guests" else "CPU"
    return f"{what} {h.cpu_load_pct:.0f} % over {_span(h.cpu_load_span_s)}"


def place(hosts: Iterable[HostFacts], request: PlacementRequest, *, cpu_ratio: float = 4.0,
          ram_ratio: float = 1.0, weigher: str = "spread",
          claims: dict[str, tuple[int, int]] | None = None,
          cpu_threshold: float | None = None, ram_threshold: float | None = None) -> Placement:
    """Choose a host for ``request`` among ``hosts``.

    ``cpu_ratio``/``ram_ratio``: the inventory's allocation ratios. ``weigher``: "spread" or
    "pack". ``claims``: {host: (vCPUs, RAM MiB)} held by creates in flight (see
    :class:`ReservationLedger`), added to the host's allocations and taken from its free RAM.
    Returns a :class:`Placement`; never raises for a host that does not fit (it is refused with
    reasons). ``cpu_threshold``/``ram_threshold``: percent of measured CPU / RAM use above which
    a host is refused (``pressure``; None: each host's own :attr:`HostFacts.cpu_threshold` /
    ``ram_threshold``, None there too: no such filter). Raises ValueError for a weigher other
    than spread/pack or a non-positive size.
    """
    if weigher not in WEIGHERS:
        raise ValueError(f"weigher must be one of {', '.join(WEIGHERS)}, not {weigher!r}")
    if request.vcpus < 1 or request.ram_mib < 1:
        raise ValueError("a VM needs at least 1 vCPU and 1 MiB of RAM")
    claims = claims or {}
    hosts = list(hosts)
    rows: list[HostVerdict] = []
    passing: list[tuple[float, str]] = []
    for h in hosts:
        reasons: list[str] = []
        if not h.enabled:
            why = f" ({h.disabled_reason})" if h.disabled_reason else ""
            reasons.append(f"enabled: host is disabled in the inventory{why}")
        if not h.reachable:
            reasons.append(f"reachable: {h.error or 'cannot reach its libvirt'}")
        if request.pinned_host and h.name != request.pinned_host:
            reasons.append(f"pinned: the VM is pinned to {request.pinned_host}")
        if not h.reachable or (not h.enabled and not h.cores):
            # Nothing else is known about an unreachable host, or a disabled one nobody asked.
            rows.append(HostVerdict(h.name, False, True, tuple(reasons)))
            continue
        refusal, _ = arch_fit(h, request)
        if refusal:
            reasons.append(refusal)
        if request.anti_affinity_group and h.name in request.group_hosts:
            reasons.append(f"anti-affinity: already holds a member of group {request.anti_affinity_group!r}")
        missing = sorted(request.physnets - h.physnets)
        if missing and h.physnets_error:
            reasons.append(f"physnet: cannot tell whether it maps {', '.join(missing)}: {h.physnets_error}")
        elif missing:
            have = ", ".join(sorted(h.physnets)) or "none"
            reasons.append(f"physnet: no bridge mapping for {', '.join(missing)} (host maps: {have})")
        claim_vcpus, claim_ram = claims.get(h.name, (0, 0))
        used_vcpus = h.alloc_vcpus + claim_vcpus
        used_ram = h.alloc_ram_mib + claim_ram
        cap_vcpus = int(h.cores * cpu_ratio)
        cap_ram = int(h.ram_total_mib * ram_ratio)
        if used_vcpus + request.vcpus > cap_vcpus:
            reasons.append(f"vcpus: {used_vcpus} allocated + {request.vcpus} asked > {cap_vcpus} "
                           f"({h.cores} cores × {_fmt_ratio(cpu_ratio)})")
        if used_ram + request.ram_mib > cap_ram:
            reasons.append(f"ram: {used_ram} MiB allocated + {request.ram_mib} asked > {cap_ram} MiB "
                           f"({h.ram_total_mib} MiB × {_fmt_ratio(ram_ratio)})")
        free_ram = h.ram_free_mib - claim_ram
        if free_ram < request.ram_mib:
            reasons.append(f"ram: only {max(free_ram, 0)} MiB free now, {request.ram_mib} asked")
        cpu_max = cpu_threshold if cpu_threshold is not None else h.cpu_threshold
        ram_max = ram_threshold if ram_threshold is not None else h.ram_threshold
        if cpu_max is not None and h.cpu_load_pct is not None and h.cpu_load_pct > cpu_max:
            reasons.append(f"pressure: {_cpu_figure(h)} > {cpu_max:g} % threshold")
        if ram_max is not None and h.ram_used_pct is not None and h.ram_used_pct > ram_max:
            reasons.append(f"pressure: RAM {h.ram_used_pct:.0f} % in use > {ram_max:g} % threshold")
        reasons.extend(h.refusals)
        usage = dict(vcpus_used=used_vcpus, vcpus_capacity=cap_vcpus,
                     ram_used_mib=used_ram, ram_capacity_mib=cap_ram,
                     cpu_load_pct=h.cpu_load_pct, ram_used_pct=h.ram_used_pct)
        if reasons:
            rows.append(HostVerdict(h.name, False, True, tuple(reasons), **usage))
            continue
        free_cpu_frac = (cap_vcpus - used_vcpus - request.vcpus) / cap_vcpus
        free_ram_frac = (cap_ram - used_ram - request.ram_mib) / cap_ram
        terms = [free_cpu_frac, free_ram_frac]
        if h.cpu_load_pct is not None:
            terms.append(1 - min(h.cpu_load_pct, 100.0) / 100)
        if h.ram_used_pct is not None:
            terms.append(1 - min(h.ram_used_pct, 100.0) / 100)
        score = sum(terms) / len(terms)
        passing.append((score, h.name))
        rows.append(HostVerdict(h.name, False, False, (), score=score, **usage))

    chosen: str | None = None
    if passing:
        if weigher == "spread":
            chosen = sorted(passing, key=lambda p: (-p[0], p[1]))[0][1]
        else:
            chosen = sorted(passing, key=lambda p: (p[0], p[1]))[0][1]
    best = next((s for s, n in passing if n == chosen), None)
    facts = {h.name: h for h in hosts}
    out = []
    for v in rows:
        h = facts.get(v.host)
        measured = ""
        if h is not None and (h.cpu_load_pct is not None or h.ram_used_pct is not None):
            parts = ([_cpu_figure(h)] if h.cpu_load_pct is not None else []) + \
                    ([f"RAM {h.ram_used_pct:.0f} % in use"] if h.ram_used_pct is not None else [])
            measured = f"; measured {', '.join(parts)}"
        note = arch_fit(h, request)[1] if h is not None and not v.refused else ""
        if note:
            measured += f"; {note}"
        if v.refused:
            out.append(v)
        elif v.host == chosen:
            why = (f"passes every filter; {'most' if weigher == 'spread' else 'least'} headroom "
                   f"after placement ({v.score:.0%}, weigher {weigher}){measured}")
            out.append(replace(v, chosen=True, reasons=(why,)))
        else:
            why = (f"passes every filter; {v.score:.0%} headroom after placement vs "
                   f"{best:.0%} on {chosen} (weigher {weigher}){measured}")
            out.append(replace(v, reasons=(why,)))
    return Placement(chosen, tuple(out), weigher)


def arch_fit(h: HostFacts, request: PlacementRequest) -> tuple[str | None, str]:
    """(refusal or None, note) for running ``request.arch`` on ``h``: the refusal names what the
    host offers; the note says when the guest would be emulated (TCG) and who allowed it."""
    if h.guest_arches is None:
        if h.arch != request.arch:
            return f"arch: host is {h.arch}, the template needs {request.arch}", ""
        return None, ""
    offered = dict(h.guest_arches)
    if request.arch not in offered:
        have = ", ".join(f"{a} ({'/'.join(t)})" for a, t in h.guest_arches) or "none"
        return (f"arch: the host's libvirt cannot run {request.arch} guests (it offers {have}; "
                f"install qemu-system for {request.arch})"), ""
    if request.arch == h.arch:
        return None, ""
    who = "the request" if request.allow_emulation else "the host" if h.allow_emulation else None
    if who is None:
        return (f"arch: {request.arch} is only emulated on this {h.arch} host (TCG, ~10x slower); "
                f"refused unless the host allows emulation (domain_type = \"qemu\") or the request "
                f"does (--allow-emulation)"), ""
    return None, f"{request.arch} emulated on {h.arch} (TCG), allowed by {who}"


@dataclass
class Claim:
    """A reservation held by one create in flight. RAM in MiB."""

    id: int
    host: str
    vcpus: int
    ram_mib: int
    made_at: float
    released_at: float | None = None


class ReservationLedger:
    """In-process claims that keep concurrent creates from oversubscribing a host.

    Use::

        facts_time = time.monotonic(); facts = gather_facts(...)
        placement, claim = LEDGER.place_and_claim(facts, request, facts_time=facts_time, ...)
        try: ... define + start the domain ...
        finally: LEDGER.release(claim)

    ``place_and_claim`` runs :func:`place` and records the claim under one lock, so two threads
    can never both take the last slot. A claim counts against its host while held, AND after its
    release for any caller whose facts were read before the release (the domain it stood for may
    not be in those facts yet). Released claims are forgotten after ``keep_seconds``.

    Limits: only creates inside this process are covered here; across consoles the provisioning
    service adds the host-side lock (backends.hostlock) around re-check + define.
    """

    def __init__(self, keep_seconds: float = 600.0, clock=time.monotonic):
        self._lock = threading.Lock()
        self._claims: dict[int, Claim] = {}
        self._ids = itertools.count(1)
        self._keep = keep_seconds
        self._clock = clock

    def now(self) -> float:
        """The ledger's clock (monotonic seconds): stamp facts with it before reading them."""
        return self._clock()

    def held(self, facts_time: float | None = None) -> dict[str, tuple[int, int]]:
        """{host: (vCPUs, RAM MiB)} to add to facts read at ``facts_time`` (None: only live claims)."""
        with self._lock:
            return self._held_locked(facts_time)

    def _held_locked(self, facts_time: float | None) -> dict[str, tuple[int, int]]:
        now = self._clock()
        for cid in [c.id for c in self._claims.values()
                    if c.released_at is not None and now - c.released_at > self._keep]:
            del self._claims[cid]
        out: dict[str, tuple[int, int]] = {}
        for c in self._claims.values():
            live = c.released_at is None
            stale_facts = facts_time is not None and c.released_at is not None and c.released_at > facts_time
            if live or stale_facts:
                v, r = out.get(c.host, (0, 0))
                out[c.host] = (v + c.vcpus, r + c.ram_mib)
        return out

    def place_and_claim(self, hosts: Iterable[HostFacts], request: PlacementRequest, *,
                        facts_time: float | None = None, **kwargs) -> tuple[Placement, Claim | None]:
        """Run :func:`place` with the claims counted and, if a host is chosen, claim it.

        ``kwargs`` go to :func:`place` (cpu_ratio, ram_ratio, weigher). Returns the placement and
        the claim (None when no host fits). Release the claim with :meth:`release`.
        """
        with self._lock:
            placement = place(hosts, request, claims=self._held_locked(facts_time), **kwargs)
            if placement.host is None:
                return placement, None
            claim = Claim(next(self._ids), placement.host, request.vcpus, request.ram_mib, self._clock())
            self._claims[claim.id] = claim
            return placement, claim

    def release(self, claim: Claim | None) -> None:
        """End a claim (the domain is defined and started, or the create failed). Idempotent."""
        if claim is None:
            return
        with self._lock:
            c = self._claims.get(claim.id)
            if c is not None and c.released_at is None:
                c.released_at = self._clock()

    def drop(self, claim: Claim | None) -> None:
        """Forget a claim at once (the create failed before anything was defined)."""
        if claim is None:
            return
        with self._lock:
            self._claims.pop(claim.id, None)


# The process-wide ledger the provisioning service uses.
LEDGER = ReservationLedger()
