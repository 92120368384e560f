"""The ``tenant`` verbs and ``audit`` (one word, no group): read verbs: declarations only (see :mod:`console.verbs`).

Services: console/services/tenants.py (usage against quota), audit_read.py (the audit trail).
CLI handlers: console/cli_tenant.py. No key of their own; in the console the palette runs them:
the Tenants panel, the highlighted tenant's details view, the Audit view (screens/audit.py).
"""

from __future__ import annotations

import argparse

from . import Group, Verb, arg

GROUPS = (
    Group("tenant", "tenants: usage (VMs, vCPUs, MiB, networks) against quota", "tenant_cmd"),
)

JSON = arg("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output")

VERBS = (
    Verb("tenant list", "every tenant: VMs, vCPUs, RAM MiB and networks used, against its quota",
         cli="cli_tenant.cmd_list", service="tenants.list_tenants", args=(JSON,),
         panel="tenants", action="panel('tenants')",
         examples=("virtdeck tenant list", "virtdeck tenant list -o yaml")),
    Verb("tenant show", "one tenant: usage against quota, its VMs and networks",
         cli="cli_tenant.cmd_show", service="tenants.show_tenant", targets="one",
         args=(arg("name", metavar="NAME", help="tenant name"), JSON), render="tenants.show_lines",
         panel="tenants", action="show_details",
         examples=("virtdeck tenant show demo", "virtdeck tenant show demo --json")),
    Verb("audit", "the audit trail, oldest first (filter by operator, verb, target, time)",
         cli="cli_tenant.cmd_audit", service="audit_read.read", action="audit_view",
         args=(arg("--operator", metavar="WHO", help="who (alice) or who@jumphost"),
               arg("--verb", metavar="VERB", help="vm.create, 'vm create' or a group (vm, router)"),
               arg("--target", metavar="TEXT", help="part of the target (web1, demo/web1)"),
               arg("--since", metavar="TIME", help="ISO-8601 (UTC unless an offset is given) or an age: 30m, 2h, 7d"),
               arg("--until", metavar="TIME", help="as --since; records before it"),
               arg("--limit", "-n", type=int, metavar="N", help="only the last N records"),
               JSON),
         examples=("virtdeck audit --since 1d", "virtdeck audit --verb vm.delete --operator alice --json",
                   "virtdeck audit --target web1 -n 20")),
)
