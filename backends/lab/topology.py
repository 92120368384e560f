"""Names and addresses of the lab: one source of truth for up, down, status and tests.

Layout (N hypervisors, 1 <= N <= 4)::

    machine (root netns)
      vd-under  Linux bridge 192.168.100.1/24   ── underlay / management network
      vd-phys   Linux bridge, no address         ── provider "physnet" (physnet1), carries tags

    netns vd-central  host "central"   eth0 192.168.100.10/24
        OVN NB ovsdb-server  punix:/run/ovn/ovnnb_db.sock + ptcp:6641
        OVN SB ovsdb-server  punix:/run/ovn/ovnsb_db.sock + ptcp:6642
        ovn-northd, sshd :22
    netns vd-hvN      host "hvN"      eth0 192.168.100.1N/24   (hv1 = .11, hv2 = .12, …)
        ovsdb-server + ovs-vswitchd (datapath netdev), br-int (fail_mode=secure),
        br-phys (netdev) holding eth1 (veth on vd-phys); tunnel/encap IP 172.16.0.1N/24 on br-phys
        ovn-controller (system-id hvN, geneve, ovn-bridge-mappings=physnet1:br-phys)
        virtlogd + libvirtd (/run/libvirt/libvirt-sock), storage pool "virtdeck"
        (dir /var/lib/libvirt/images/virtdeck) with the template volumes, sshd :22
    netns vd-lhN      host "lhN"      eth0 192.168.100.(200+N)/24  (lh1 = .201 … lh16 = .216)
        a *light* hypervisor (``lab up --light N``, 0 <= N <= 16): sshd, virtlogd, libvirtd
        and the "virtdeck" pool only — no OVS, no ovn-controller, no physnet, no chassis
        (inventory ``ovn = false``): for scale tests of listing and events (light.py)
    netns vd-outside  host "outside"  (no sshd)
        eth0 172.16.0.254/24 on vd-phys, untagged: stands for "the internet behind NAT"
        (give an OVN router's external port an address in 172.16.0.0/24, SNAT to it, ping .254)
        eth1 on vd-phys (trunk) in OVS bridge br-ext (netdev) with two access ports:
          tag 100 -> veth into netns vd-ext100: 10.100.0.1/24 ("external host on VLAN 100")
          tag 200 -> veth into netns vd-ext200: 10.200.0.1/24 ("external host on VLAN 200")
        (the kernel has no 8021q: VLANs end in OVS, see LAB-NOTES.md)

OVN flavours (``virtdeck lab up --ovn FLAVOUR``, recorded in state.json; central.py)::

    standalone   one NB and one SB ovsdb-server in vd-central as above, plain tcp
    cluster-ssl  (default) 3 raft members in vd-central, one per address 192.168.100.10/.20/.30 on eth0:
        member i: NB ovsdb-server pssl:6641:ADDR (raft ssl:ADDR:6643), SB pssl:6642:ADDR
        (raft ssl:ADDR:6644), unix sockets /run/ovn/ovn{nb,sb}_db-i.sock, ovn-northd-i on the
        whole member lists (the SB lock elects the active one); a PKI made with ovs-pki in the
        lab dir's pki/ (pki.py); hypervisors' ovn-controllers on ssl: with the SB member list.

A provider network on physnet1 is an OVN localnet LSP (``options:network_name=physnet1``,
``tag=100`` for VLAN 100): its guests reach 10.100.0.1 across hypervisors through vd-phys.
All hosts' /etc/hosts list every lab host by name.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_HYPERVISORS = 4
DEFAULT_HYPERVISORS = 2
MAX_LIGHT = 16          # light hypervisors (sshd + libvirtd only), `lab up --light N`
LIGHT_BASE = 200        # lhN's underlay address is 192.168.100.(200+N): clear of .10-.30, .1N

UNDERLAY_BRIDGE = "vd-under"
PHYSNET_BRIDGE = "vd-phys"
UNDERLAY_CIDR = "192.168.100.0/24"
UNDERLAY_GATEWAY = "192.168.100.1"
PREFIX = 24
PHYSNET_CIDR = "172.16.0.0/24"
PHYSNET_NAME = "physnet1"

CENTRAL_ADDRESS = "192.168.100.10"
NB_PORT = 6641
SB_PORT = 6642
NB_SOCKET = "/run/ovn/ovnnb_db.sock"
SB_SOCKET = "/run/ovn/ovnsb_db.sock"
NB_TCP = f"tcp:{CENTRAL_ADDRESS}:{NB_PORT}"
SB_TCP = f"tcp:{CENTRAL_ADDRESS}:{SB_PORT}"
LIBVIRT_SOCKET = "/run/libvirt/libvirt-sock"

OVN_STANDALONE = "standalone"
OVN_CLUSTER_SSL = "cluster-ssl"
OVN_FLAVOURS = (OVN_STANDALONE, OVN_CLUSTER_SSL)
DEFAULT_OVN = OVN_CLUSTER_SSL   # what production runs; the suite runs against it
# cluster-ssl: the raft members' addresses, all on central's eth0 (member 1 = CENTRAL_ADDRESS)
CENTRAL_MEMBERS = (CENTRAL_ADDRESS, "192.168.100.20", "192.168.100.30")
NB_RAFT_PORT = 6643
SB_RAFT_PORT = 6644
POOL_NAME = "virtdeck"
POOL_PATH = "/var/lib/libvirt/images/virtdeck"

OUTSIDE_NETNS = "vd-outside"
OUTSIDE_ADDRESS = "172.16.0.254"          # untagged on physnet1, "internet"
OUTSIDE_BRIDGE = "br-ext"                 # OVS bridge in the outside host, trunk to vd-phys
VLAN_HOSTS = {                            # VLAN id -> (netns, address of the external host)
    100: ("vd-ext100", "10.100.0.1"),
    200: ("vd-ext200", "10.200.0.1"),
}


@dataclass(frozen=True)
class LabHost:
    """One lab host: a network namespace plus a holder process owning its mount/UTS namespace.

    ``address`` is the underlay (management) IPv4 address; ``tunnel_ip`` the GENEVE endpoint on
    physnet1 (hypervisors only); ``role`` is "central", "hypervisor", "light" (libvirt over SSH,
    no OVS/OVN) or "outside".
    Host-side interface names are ``vu-<name>`` (underlay) and ``vp-<name>`` (physnet).
    """

    name: str
    role: str
    address: str | None
    tunnel_ip: str | None = None

    @property
    def netns(self) -> str:
        return f"vd-{self.name}"

    @property
    def underlay_veth(self) -> str:
        return f"vu-{self.name}"

    @property
    def physnet_veth(self) -> str:
        return f"vp-{self.name}"

    @property
    def is_hypervisor(self) -> bool:
        return self.role == "hypervisor"

    @property
    def is_light(self) -> bool:
        return self.role == "light"

    @property
    def runs_libvirt(self) -> bool:
        """A hypervisor or a light one: libvirtd, its pool and domains."""
        return self.role in ("hypervisor", "light")

    @property
    def has_sshd(self) -> bool:
        return self.role in ("central", "hypervisor", "light")


CENTRAL = LabHost("central", "central", CENTRAL_ADDRESS)
OUTSIDE = LabHost("outside", "outside", None)


def nb_remote(flavour: str = DEFAULT_OVN) -> str:
    """The NB connection string a client on the underlay uses: ``tcp:192.168.100.10:6641`` for
    standalone, the ``ssl:`` member list for cluster-ssl."""
    if flavour == OVN_CLUSTER_SSL:
        return ",".join(f"ssl:{a}:{NB_PORT}" for a in CENTRAL_MEMBERS)
    return NB_TCP


def sb_remote(flavour: str = DEFAULT_OVN) -> str:
    """The SB connection string (ovn-controller's ``ovn-remote``), like :func:`nb_remote`."""
    if flavour == OVN_CLUSTER_SSL:
        return ",".join(f"ssl:{a}:{SB_PORT}" for a in CENTRAL_MEMBERS)
    return SB_TCP


def hypervisor(i: int) -> LabHost:
    """hv{i}: underlay 192.168.100.1{i}, tunnel 172.16.0.1{i} (1 <= i <= MAX_HYPERVISORS)."""
    return LabHost(f"hv{i}", "hypervisor", f"192.168.100.{10 + i}", f"172.16.0.{10 + i}")


def hypervisors(n: int) -> list[LabHost]:
    return [hypervisor(i) for i in range(1, n + 1)]


def all_hypervisors() -> list[LabHost]:
    return hypervisors(MAX_HYPERVISORS)


def light(i: int) -> LabHost:
    """lh{i}, a light hypervisor: underlay 192.168.100.(200+i), no tunnel (1 <= i <= MAX_LIGHT)."""
    return LabHost(f"lh{i}", "light", f"192.168.100.{LIGHT_BASE + i}")


def lights(n: int) -> list[LabHost]:
    return [light(i) for i in range(1, n + 1)]


def all_lights() -> list[LabHost]:
    return lights(MAX_LIGHT)


def hosts(n: int, n_light: int = 0) -> list[LabHost]:
    """Every host of a lab with ``n`` hypervisors and ``n_light`` light ones, in bring-up order."""
    return [CENTRAL, *hypervisors(n), *lights(n_light), OUTSIDE]


def by_name(name: str) -> LabHost:
    """The host called ``name`` (central, outside, hv1..hv4, lh1..lh16); KeyError otherwise."""
    for h in [CENTRAL, OUTSIDE, *all_hypervisors(), *all_lights()]:
        if h.name == name:
            return h
    raise KeyError(name)


def etc_hosts(n: int, n_light: int = 0) -> str:
    """/etc/hosts content every lab host gets (names resolve without DNS)."""
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback",
             f"{UNDERLAY_GATEWAY} lab-gateway"]
    for h in [CENTRAL, *hypervisors(n), *lights(n_light)]:
        lines.append(f"{h.address} {h.name}")
    return "\n".join(lines) + "\n"
