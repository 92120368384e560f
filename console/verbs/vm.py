"""The ``vm`` verbs: declarations only (see :mod:`console.verbs`).

Services: console/services/vm_*.py (vm_power, vm_resize, vm_move, …), provision.py (create),
vm_show.py (show). CLI handlers: console/cli_vm.py (create) and console/cli_vm_verbs.py.
"""

from __future__ import annotations

import argparse

from . import Confirm, Group, Verb, arg

GROUPS = (Group("vm", "virtual machines: create, start, stop, delete, resize, …", "vm_cmd"),)

NAMES = arg("names", nargs="+", metavar="NAME", help="VM name(s)")
NAME = arg("name", metavar="NAME", help="VM name")
HOST = arg("--host", help="the hypervisor holding it (default: search every enabled one)")
JSON = arg("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output")


def _on_vms(name: str, help: str, service: str, label: str, key: str, *extra, confirm=None,
            many: bool = True, action: str | None = None, cli: str = "cli_vm_verbs.cmd_lifecycle",
            render: str | None = None, examples: tuple[str, ...] = ()) -> Verb:
    """A verb on existing VMs: NAME(s), --host, --json, then its own arguments. ``examples``
    follow the plain call (``virtdeck vm start web1 db1``), shown when no option is required."""
    plain = f"virtdeck vm {name} web1" + (" db1" if many else "")
    return Verb(name=f"vm {name}", help=help, cli=cli, service=service,
                targets="many" if many else "one", label=label, key=key, panel="vms",
                action=action or f"vm_verb({name!r})", confirm=confirm,
                args=(NAMES if many else NAME, HOST, JSON, *extra), render=render,
                examples=examples if any(a.opts.get("required") for a in extra) else (plain, *examples))


CREATE_ARGS = (
    arg("name", help="VM name = hostname (lowercase letters, digits, '-')"),
    arg("--tenant", "-t", required=True, help="tenant name"),
    arg("--template", required=True, help="template name (virtdeck template list)"),
    arg("--vcpus", type=int, default=1, metavar="N", help="vCPUs (default 1)"),
    # --memory (MiB) everywhere (vm create, vm resize, like virsh setmem); --ram kept, hidden
    arg("--memory", type=int, default=512, dest="ram", metavar="MiB", help="RAM in MiB (default 512)"),
    arg("--ram", type=int, dest="ram", default=argparse.SUPPRESS, help=argparse.SUPPRESS),
    arg("--disk", type=int, default=4, metavar="GiB", help="disk in GiB (default 4)"),
    arg("--network", action="append", required=True, metavar="NAME",
        help="network of the tenant; repeat (or comma-separate) for more NICs"),
    arg("--ip", action="append", metavar="ADDR",
        help="address per --network, in order ('auto' picks a free one, 'dynamic' = OVN IPAM)"),
    arg("--ssh-key", action="append", metavar="KEY|FILE", help="public key line or .pub file; repeatable",
        default=[]),
    arg("--user", help="default user (default: the template's)"),
    arg("--password-stdin", action="store_true", help="read the user's password from stdin (hashed at once)"),
    arg("--password-hash", metavar="HASH", help="SHA-512 crypt hash ($6$…) of the password"),
    arg("--user-data", metavar="FILE", help="extra #cloud-config YAML to merge ('-' = stdin)"),
    arg("--host", help="pin to this hypervisor (default: automatic placement)"),
    arg("--weigher", choices=("spread", "pack"), default="spread",
        help="placement: spread (most free room first, default) or pack (fill hosts in turn)"),
    arg("--anti-affinity", metavar="GROUP", help="never on a host holding another VM of GROUP"),
    arg("--allow-emulation", action="store_true",
        help="accept a host that only emulates the template's arch (TCG: aarch64 on x86_64, ~10x slower)"),
    arg("--max-vcpus", type=int, metavar="N",
        help="live-growth ceiling for vm resize (default: 4x --vcpus, at most the host's cores)"),
    arg("--max-memory", type=int, dest="max_ram", metavar="MiB",
        help="live-growth ceiling in MiB (default: 2x --memory, at most the host's RAM)"),
    arg("--max-ram", type=int, dest="max_ram", default=argparse.SUPPRESS, help=argparse.SUPPRESS),
    arg("--no-start", action="store_true", help="define but do not start"),
    arg("--dry-run", action="store_true", help="show placement and seed; create nothing"),
    JSON,
)

_PLUG = "Like pulling the plug: unsaved guest data is lost."

VERBS = (
    Verb("vm create", "create a VM: seed, placement, disk, ports, domain (rolled back on failure)",
         cli="cli_vm.cmd_create", service="provision.create_vm", targets="one", label="Create",
         key="c", panel="vms", action="vm_create", args=CREATE_ARGS,
         examples=("virtdeck vm create web1 -t demo --template debian12 --network web --ssh-key ~/.ssh/id_ed25519.pub",
                   "virtdeck vm create db1 -t demo --template debian12 --vcpus 2 --memory 2048 --network web "
                   "--ip 10.0.0.20 --ssh-key KEY --password-stdin < pw.txt",
                   "virtdeck vm create web2 ... --dry-run   # placement and seed only")),
    _on_vms("start", "boot stopped VMs (running ones: no-op)", "vm_power.start", "Start", "s",
            confirm=Confirm("Start", always=False)),
    _on_vms("shutdown", "ACPI power button, wait, then offer a force-off", "vm_power.shutdown", "Shutdown", "S",
            arg("--timeout", type=float, default=60.0, metavar="S",
                help="seconds to wait for the guest to power off (0: do not wait; default 60)"),
            arg("--force", action="store_true", help="power off what is still running after the timeout"),
            # {timeout}: the console's wait, filled in by the screen
            confirm=Confirm("Shut down (ACPI)", "The guests get the ACPI power button; after {timeout:g} s "
                            "you are offered a force-off.")),
    _on_vms("poweroff", "force VMs off at once (pull the plug)", "vm_power.poweroff", "Force off", "F",
            confirm=Confirm("Force off", _PLUG, danger=True)),
    _on_vms("reboot", "reboot running VMs (ACPI; --hard: reset)", "vm_power.reboot", "Reboot", "R",
            arg("--hard", action="store_true", help="reset without asking the guest"),
            arg("--timeout", type=float, default=60.0, metavar="S",
                help="seconds to wait for the guest to go down and come back (0: do not wait; default 60)"),
            confirm=Confirm("Reboot"), examples=("virtdeck vm reboot web1 --hard",)),
    _on_vms("suspend", "pause running VMs", "vm_power.suspend", "Pause", "p",
            confirm=Confirm("Pause", always=False)),
    _on_vms("resume", "resume paused VMs", "vm_power.resume", "Resume", "u",
            confirm=Confirm("Resume", always=False)),
    _on_vms("delete", "delete VMs with their disk, seed, ports, DHCP rows and floating IPs", "vm_delete.delete",
            "Delete", "ctrl+d,delete",
            arg("--yes", "-y", action="store_true", help="do not ask for confirmation"),
            arg("--missing-ok", action="store_true", help="a VM that does not exist is a no-op"),
            confirm=Confirm("DELETE", "The domains, their disks, seeds, ports and floating IPs are removed "
                            "for good.", danger=True), examples=("virtdeck vm delete web1 --yes --json",)),
    _on_vms("resize", "change vCPUs / RAM (live where the domain allows, else at next boot)", "vm_resize.resize",
            "Resize", "z",
            arg("--vcpus", type=int, metavar="N", help="vCPUs"),
            arg("--memory", type=int, metavar="MiB", help="RAM in MiB"),
            arg("--ram", type=int, dest="memory", default=argparse.SUPPRESS, help=argparse.SUPPRESS),
            arg("--offline", action="store_true", help="change the config only, not the running guest"),
            many=False, action="vm_resize", cli="cli_vm_verbs.cmd_resize",
            examples=("virtdeck vm resize web1 --vcpus 2 --memory 2048",)),
    _on_vms("edit-config", "edit the VM's cloud-init user-data; the seed is rebuilt with a new instance-id",
            "vm_seed.edit_config", "Edit cloud-config", "e",
            arg("--file", metavar="PATH", help="take the new user-data from PATH ('-': stdin) instead of $EDITOR"),
            arg("--show", action="store_true", help="print the current user-data and exit"),
            many=False, action="vm_edit_config", cli="cli_vm_verbs.cmd_edit_config"),
    _on_vms("ip", "the VM's addresses, from OVN", "vm_lookup.ip", "Addresses", "i",
            many=False, action="vm_ip", cli="cli_vm_verbs.cmd_ip"),
    _on_vms("console", "attach to the VM's serial console (escape: Ctrl-])", "vm_console.console", "Serial console",
            "t", many=False, action="vm_console", cli="cli_vm_verbs.cmd_console"),
    _on_vms("move", "move a stopped VM to another hypervisor (disk copied through libvirt)", "vm_move.move",
            "Move (stopped)", "m",
            arg("--to", required=True, metavar="HOST", help="target hypervisor"),
            many=False, action="vm_move", cli="cli_vm_verbs.cmd_move",
            examples=("virtdeck vm move web1 --to hv2",)),
    Verb("vm list", "every VM on every hypervisor, with IPs from OVN", cli="cli_vm_verbs.cmd_list",
         service="vm_lookup.list_vms", panel="vms", action="panel('vms')",
         args=(arg("--host", help="only this hypervisor"), arg("--tenant", "-t", help="only this tenant's VMs"), JSON),
         examples=("virtdeck vm list", "virtdeck vm list -t demo -o yaml", "virtdeck vm list --wide --host hv1")),
    _on_vms("show", "one VM in detail: facts, disks, NICs with LSP/IP/switch, seed, host", "vm_show.show",
            "Show all facts", "v", many=False, action="vm_read('vm show')", cli="cli_vm_verbs.cmd_read",
            render="vm_show.show_lines", examples=("virtdeck vm show web1 -o yaml",)),
)
