"""The line filter the start-up's SSH command runs over libvirt's domain definitions
(backends.domain_facts.CONFIG_FILTER, through the real ``sh`` and ``grep``): what it drops is
never read, so the parsed facts are the same and every definition still parses."""

from __future__ import annotations

import subprocess

from virtdeck.backends.domain_facts import CONFIG_FILTER, parse
from virtdeck.backends.hypervisor import parse_config_text

# As libvirt writes /etc/libvirt/qemu/NAME.xml for a VM virtdeck created (one element a line).
RICH = """<!--
WARNING: THIS IS AN AUTO-GENERATED FILE. CHANGES TO IT ARE LIKELY TO BE
OVERWRITTEN AND LOST. Changes to this xml configuration should be made using:
  virsh edit web-1
or other application using the libvirt API.
-->

<domain type='kvm'>
  <name>web-1</name>
  <uuid>5b0c8f0e-1d7e-4a4e-9b53-5c7e1a2f9d01</uuid>
  <metadata>
    <virtdeck:instance xmlns:virtdeck="https://virtdeck.dev/xmlns/domain/1.0">
      <virtdeck:tenant>acme</virtdeck:tenant>
      <virtdeck:template>debian-12</virtdeck:template>
      <virtdeck:seed>/var/lib/virtdeck/seeds/web-1.iso</virtdeck:seed>
      <virtdeck:networks>
        <virtdeck:network>front</virtdeck:network>
      </virtdeck:networks>
    </virtdeck:instance>
    <vdp:placement xmlns:vdp="https://virtdeck.dev/xmlns/placement/1.0" group="web"/>
  </metadata>
  <memory unit='KiB'>2097152</memory>
  <currentMemory unit='KiB'>1048576</currentMemory>
  <vcpu placement='static' current='2'>4</vcpu>
  <os>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <kernel>/var/lib/virtdeck/vmlinuz</kernel>
    <boot dev='hd'/>
  </os>
  <features>
    <acpi/>
    <apic/>
    <vmport state='off'/>
  </features>
  <cpu mode='host-model' check='partial'>
    <feature policy='require' name='x2apic'/>
  </cpu>
  <clock offset='utc'>
    <timer name='rtc' tickpolicy='catchup'/>
    <timer name='hpet' present='no'/>
  </clock>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <pm>
    <suspend-to-mem enabled='no'/>
    <suspend-to-disk enabled='no'/>
  </pm>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/web-1.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>
    </disk>
    <disk type='volume' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source pool='default' volume='web-1-seed.iso'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
      <address type='drive' controller='0' bus='0' target='0' unit='0'/>
    </disk>
    <controller type='usb' index='0' model='qemu-xhci' ports='15'>
      <address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>
    </controller>
    <controller type='pci' index='0' model='pcie-root'/>
    <interface type='bridge'>
      <mac address='52:54:00:AB:CD:EF'/>
      <source bridge='br-int'/>
      <virtualport type='openvswitch'>
        <parameters interfaceid='0d6f4c1e-8a57-4f9b-9e0e-3f1f0c9d2a11'/>
      </virtualport>
      <model type='virtio'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </interface>
    <serial type='pty'>
      <log file='/var/log/libvirt/qemu/web-1-serial.log' append='on'/>
      <target type='isa-serial' port='0'>
        <model name='isa-serial'/>
      </target>
    </serial>
    <input type='mouse' bus='ps2'/>
    <input type='keyboard' bus='ps2'/>
    <audio id='1' type='none'/>
    <memballoon model='virtio'>
      <address type='pci' domain='0x0000' bus='0x05' slot='0x00' function='0x0'/>
    </memballoon>
  </devices>
</domain>
"""


def run_filter(text: str) -> str:
    return subprocess.run(["sh", "-c", CONFIG_FILTER], input=text, capture_output=True,
                          text=True, check=False).stdout


def test_filter_drops_only_lines_the_parser_never_reads():
    out = run_filter(RICH)
    assert len(out) < len(RICH) * 0.8
    assert "<address" not in out and "<emulator>" not in out and "<on_crash>" not in out
    assert "<controller type='usb'" in out          # an element with children stays whole
    full, cut = parse(RICH[RICH.index("<domain"):], keep_text=False), \
        parse(out[out.index("<domain"):], keep_text=False)
    assert cut == full
    assert (cut.tenant, cut.group, cut.vcpus, cut.memory_mib, cut.kernel) == \
        ("acme", "web", 2, 1024, "/var/lib/virtdeck/vmlinuz")
    assert [d.source for d in cut.disks] == ["/var/lib/libvirt/images/web-1.qcow2",
                                             "pool:default/web-1-seed.iso"]
    assert cut.nics[0].interfaceid == "0d6f4c1e-8a57-4f9b-9e0e-3f1f0c9d2a11"
    assert cut.serial_log == "/var/log/libvirt/qemu/web-1-serial.log"


def test_filtered_stream_of_definitions_parses_as_the_raw_one():
    many = "".join(RICH.replace("web-1", f"web-{i}").replace("5b0c8f0e", f"{i:08x}")
                   for i in range(50))
    assert parse_config_text(run_filter(many)) == parse_config_text(many)
    assert len(parse_config_text(many)) == 50
