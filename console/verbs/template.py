"""The ``template`` verbs: declarations only (see :mod:`console.verbs`).

Service: console/services/templates.py; CLI handlers: console/cli_template.py. In the console
they live in the Templates panel (5), which lists and adds templates itself.
"""

from __future__ import annotations

import argparse

from . import Group, Verb, arg

GROUPS = (Group("template", "base images in every hypervisor's pool, pinned by sha256", "template_cmd"),)

#: a top-level ``--json`` given before the verb survives (a sub-parser default would reset it)
JSON = arg("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output")


def _tpl(leaf: str, help: str, service: str, *args) -> Verb:
    return Verb(name=f"template {leaf}", help=help, cli=f"cli_template.cmd_{leaf}", service=service,
                panel="templates", action="panel('templates')", args=args)


VERBS = (
    _tpl("list", "templates and where they are", "templates.list_templates", JSON),
    _tpl("add", "upload an image to every hypervisor and verify its sha256 there", "templates.add_template",
         arg("name"),
         arg("image", help="local qcow2 (or raw) image file"),
         arg("--sha256", help="the image's pinned sha256 (refused if the file differs)"),
         arg("--arch", default="x86_64"),
         arg("--os", default="linux"),
         arg("--default-user", default="debian"),
         arg("--pool", default="virtdeck"),
         arg("--kernel", help="kernel file for direct kernel boot"),
         arg("--initrd", help="initrd file for direct kernel boot"),
         arg("--cmdline", help="kernel command line, e.g. 'root=/dev/vda ro console=ttyS0'"),
         JSON),
    _tpl("delete", "delete a template (refused while a VM disk uses it)", "templates.delete_template",
         arg("name"), JSON),
)
