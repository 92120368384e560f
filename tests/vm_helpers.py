"""Helpers for fast VM-verb tests without the lab: a session whose hypervisors are libvirt
``test://`` nodes (the real libvirt library, a private node per host) and whose NB is a real
ovsdb-server (the ``nb_server`` fixture); a domain + LSP of the shape the provisioning service
creates; audit records read back.

Used by tests/test_vm_ops_unit.py (the services) and tests/test_vm_actions_tui.py (the panel).
"""

from __future__ import annotations

import json
import os
import uuid

import libvirt

from virtdeck.backends.session import open_nb
from virtdeck.config.inventory import AllocationConfig, HostConfig, Inventory, TemplateConfig
from virtdeck.console.errors import HostError
from virtdeck.console.model import METADATA_NS

# A libvirt test-driver node: 2 cores, 4 GiB (the <memory> is KiB), one dir pool `virtdeck`.
NODE_XML = """<node>
<cpu><mhz>2000</mhz><model>x86_64</model><nodes>1</nodes><sockets>1</sockets><cores>2</cores><threads>1</threads></cpu>
<memory>4194304</memory>
<pool type='dir'><name>virtdeck</name><uuid>{uuid}</uuid><target><path>/var/lib/virtdeck</path></target></pool>
</node>"""


class DriverSession:
    """A session whose hypervisors are libvirt ``test://`` nodes and whose NB is a real
    ovsdb-server. Host ``down`` (when listed) behaves like an unreachable host:
    ``libvirt(host)`` raises HostError for it. ``conns``: host name -> libvirt connection."""

    def __init__(self, tmp_path, nb_remote, hosts=("hv1", "hv2"), down=()):
        self.inventory = Inventory(
            hosts=tuple(HostConfig(h, f"192.0.2.{i + 1}") for i, h in enumerate(hosts)),
            allocation=AllocationConfig(cpu_ratio=4.0, ram_ratio=1.0),
            templates=(TemplateConfig("debian12", "debian12.qcow2", sha256="0" * 64),))
        self.down = set(down)
        self.conns = {}
        for h in hosts:
            node = tmp_path / f"{h}.xml"
            node.write_text(NODE_XML.format(uuid=uuid.uuid4()))
            self.conns[h] = libvirt.open(f"test://{node}")
        self._nb = open_nb(nb_remote)

    def libvirt(self, host):
        if host in self.down:
            raise HostError(f"{host}: cannot connect: connection refused")
        return self.conns[host]

    def nb(self):
        return self._nb

    def close(self):
        self._nb.ovsdb_connection.stop()


def records(path):
    """The audit records in ``path`` (JSON lines) as dicts; [] when the file does not exist."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def make_vm(sess, host, name, tenant="demo", vcpus=1, max_vcpus=2, mem=256, max_mem=512,
            switch="net1", ip="10.0.0.5", mac=None, nat=None):
    """Define a domain with an overlay + seed volume, an LSP (named by a UUID) with DHCP and an
    optional floating IP — the shape the provisioning service creates."""
    conn = sess.conns[host]
    pool = conn.storagePoolLookupByName("virtdeck")
    disk = pool.createXML(f"<volume><name>{name}.qcow2</name><capacity>1048576</capacity>"
                          "<target><format type='qcow2'/></target></volume>", 0)
    seed = pool.createXML(f"<volume><name>{name}-seed.iso</name><capacity>65536</capacity>"
                          "<target><format type='raw'/></target></volume>", 0)
    lsp = str(uuid.uuid4())
    mac = mac or "52:54:00:%02x:%02x:%02x" % tuple(os.urandom(3))
    xml = f"""<domain type='test'>
  <name>{name}</name>
  <memory unit='KiB'>{max_mem * 1024}</memory>
  <currentMemory unit='KiB'>{mem * 1024}</currentMemory>
  <vcpu current='{vcpus}'>{max_vcpus}</vcpu>
  <metadata><virtdeck:instance xmlns:virtdeck='{METADATA_NS}'><virtdeck:tenant>{tenant}</virtdeck:tenant>
    <virtdeck:template>debian12</virtdeck:template><virtdeck:seed>{name}-seed.iso</virtdeck:seed></virtdeck:instance></metadata>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'><source file='{disk.path()}'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><source file='{seed.path()}'/><target dev='hdc' bus='ide'/><readonly/></disk>
    <interface type='bridge'><mac address='{mac}'/><source bridge='br-int'/>
      <virtualport type='openvswitch'><parameters interfaceid='{lsp}'/></virtualport></interface>
  </devices>
</domain>"""
    conn.defineXML(xml)
    nb = sess.nb()
    with nb.transaction(check_error=True) as txn:
        txn.add(nb.ls_add(switch, may_exist=True))
        txn.add(nb.lsp_add(switch, lsp, external_ids={"virtdeck:vm": name, "virtdeck:tenant": tenant}))
        txn.add(nb.lsp_set_addresses(lsp, [f"{mac} {ip}"]))
        txn.add(nb.dhcp_options_add("10.0.0.0/24", **{"virtdeck:vm": name}))
        if nat:
            txn.add(nb.lr_add("r1", may_exist=True))
    if nat:
        nb.lr_nat_add("r1", "dnat_and_snat", nat, ip).execute(check_error=True)
    return lsp


def lsp_names(nb):
    """The names of every Logical_Switch_Port in ``nb``'s replica (a set)."""
    return {r.name for r in nb.tables["Logical_Switch_Port"].rows.values()}
