"""Helpers for Pilot tests of wizards and editor screens: a bare app that pushes the screen under
test, and the small fixed inventory the VM wizard tests render against."""

from __future__ import annotations

from textual.app import App

from virtdeck.config.inventory import AllocationConfig, HostConfig, Inventory, TemplateConfig, TenantConfig


class WizardHost(App):
    """Pushes ``wizard`` on mount and collects what it dismisses with in ``results`` (a list)."""

    def __init__(self, wizard):
        super().__init__()
        self.wizard = wizard
        self.results = []

    def on_mount(self) -> None:
        self.push_screen(self.wizard, self.results.append)


# The VM wizard's inventory without a lab: two hypervisors (hv1 forced to qemu), one tenant, one
# template pinned by a dummy sha256. One object: tests check `screen.inventory is INV`.
INV = Inventory(
    hosts=(HostConfig("hv1", "192.0.2.11", domain_type="qemu"), HostConfig("hv2", "192.0.2.12")),
    allocation=AllocationConfig(),
    tenants=(TenantConfig("demo"),),
    templates=(TemplateConfig("debian12", "debian12.qcow2", "0" * 64, default_user="debian"),),
)
