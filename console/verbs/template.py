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


_EXAMPLES = {  # shown in each verb's --help
    "list": ("virtdeck template list", "virtdeck template list --wide -o yaml"),
    "add": ("virtdeck template add debian12 ./debian-12-genericcloud-amd64.qcow2 --sha256 SUM",
            "virtdeck template add debian12 --url https://example.org/debian-12.qcow2 --sha256-url "
            "https://example.org/SHA256SUMS"),
    "delete": ("virtdeck template delete debian12",),
}


def _tpl(leaf: str, help: str, service: str, *args) -> Verb:
    return Verb(name=f"template {leaf}", help=help, cli=f"cli_template.cmd_{leaf}", service=service,
                panel="templates", action="panel('templates')", args=args, examples=_EXAMPLES.get(leaf, ()))


VERBS = (
    _tpl("list", "templates and where they are", "templates.list_templates", JSON),
    _tpl("add", "upload an image to every hypervisor (or have each download it) and verify its sha256 there",
         "templates.add_template",
         arg("name", help="template name"),
         arg("image", nargs="?", help="local qcow2 (or raw) image file (or --url)"),
         arg("--url", help="http(s) URL each hypervisor downloads itself (resumable; needs --sha256 or --sha256-url)"),
         arg("--sha256", help="the image's pinned sha256 (refused if the file differs)"),
         arg("--sha256-url", help="a SHA256SUMS file holding the sum of the URL's file name"),
         arg("--limit-rate", help="cap each host's download rate (curl --limit-rate, e.g. 20M)"),
         arg("--boot", choices=("kernel", "bios", "uefi"),
             help="how it boots (default: read from the image: ESP, BIOS boot partition, aarch64 → uefi)"),
         arg("--secure-boot", action="store_true", help="UEFI with Secure Boot (default off)"),
         arg("--arch", default=None, help="x86_64 (default) or aarch64; asked at a terminal"),
         arg("--os", default=None, help="OS name shown in lists, e.g. debian12 (default linux); asked at a terminal"),
         arg("--default-user", default=None, help="the image's cloud-init default user (default debian); asked at a terminal"),
         arg("--pool", default="virtdeck", help="libvirt storage pool on every hypervisor (default virtdeck)"),
         arg("--kernel", help="kernel file for direct kernel boot"),
         arg("--initrd", help="initrd file for direct kernel boot"),
         arg("--cmdline", help="kernel command line, e.g. 'root=/dev/vda ro console=ttyS0'"),
         JSON),
    _tpl("delete", "delete a template (refused while a VM disk uses it)", "templates.delete_template",
         arg("name", help="template name"), JSON),
)
