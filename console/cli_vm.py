"""`virtdeck vm …`: the VM verb group.

`vm create` is added here by the provisioning service's owner (issue 4); the operator verbs on
existing VMs (start, shutdown, delete, resize, …) are registered from console/cli_vm_verbs.py.
"""

from __future__ import annotations


def register(subparsers) -> None:
    """Add the ``vm`` group to the top-level subparsers."""
    p = subparsers.add_parser("vm", help="virtual machines: create, start, stop, delete, resize, …")
    vm_sub = p.add_subparsers(dest="vm_cmd", metavar="ACTION", required=True)
    from console.cli_vm_verbs import register_verbs
    register_verbs(vm_sub)
