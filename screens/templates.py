"""The Templates panel (tab 5 of the main screen) and its add / delete dialogs.

``TemplatesPanel()`` (no arguments) reads ``self.app.inventory`` / ``self.app.session``; the main
screen mounts it in its Templates tab (screens/main.py looks for this class). Rows: every
inventory template with arch, OS, default user, the pinned sha256, per hypervisor whether the
volume is there and how many VM disks use it as their backing file (read through
``console.services.templates.list_templates`` in a thread worker), and its boot mode (kernel,
bios, uefi).

Keys (while the panel has focus): ``a`` add a template (upload to every hypervisor through the
libvirt volume API, or an http(s) URL each hypervisor downloads itself, with a progress bar per
host, sha256 verified on each host; a mismatch keeps nothing; the boot mode is read from the
image unless given), ``ctrl+d`` delete the highlighted one (asks first; refused while a VM disk uses it),
``g`` reload. After add/delete the app's inventory is replaced by the saved one.
This module imports no libvirt, ovsdbapp or asyncssh.
"""

from __future__ import annotations

import os

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.message import Message
from textual.widgets import Button, DataTable, Input, Label, ProgressBar, Static

from ..console.errors import ValidationError
from .form import FormScreen, ServiceDone, ServiceFailed, ServiceRunner
from ..console.services import templates as tsvc


def _hosts_cell(row) -> str:
    parts = []
    for h in row.hosts:
        if h.error:
            parts.append(f"{h.host} ?")
        elif not h.present:
            parts.append(f"{h.host} missing")
        else:
            gib = (h.size_bytes or 0) / 2 ** 30
            parts.append(f"{h.host} ✓ {gib:g} GiB" + (f" ({len(h.users)} in use)" if h.users else ""))
    return ", ".join(parts) or "-"


class TemplatesPanel(ServiceRunner, Vertical):
    """The Templates tab. See the module doc for keys."""

    class Listed(ServiceDone):
        """``result`` is the list of templates.TemplateRow from list_templates."""

    class ListFailed(ServiceFailed):
        """The hypervisors' pools could not be read."""

    DEFAULT_CSS = """
    TemplatesPanel { height: 1fr; }
    TemplatesPanel DataTable { height: 1fr; }
    TemplatesPanel #tpl-status { height: auto; color: $text-muted; }
    """
    BINDINGS = [
        Binding("a", "add", "Add template"),
        Binding("ctrl+d", "delete", "Delete template"),
        Binding("g", "reload", "Reload"),
    ]

    def compose(self) -> ComposeResult:
        yield DataTable(id="tpl-table", cursor_type="row", zebra_stripes=True)
        yield Static("a add · ctrl+d delete · g reload", id="tpl-status")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("name", "arch", "os", "user", "sha256", "hosts", "boot")
        self.action_reload()

    def _status(self, text: str) -> None:
        self.query_one("#tpl-status", Static).update(escape(text))

    def _fill(self, rows) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for r in rows:
            t = r.template
            table.add_row(t.name, t.arch, t.os, t.default_user, t.sha256[:12], _hosts_cell(r), t.boot_mode,
                          key=t.name)
        self._status(f"{len(rows)} template(s) · a add · d delete · g reload")

    def action_reload(self) -> None:
        inv = getattr(self.app, "inventory", None)
        session = getattr(self.app, "session", None)
        if inv is None:
            self._status("no inventory loaded")
            return
        if session is None:
            self._fill([tsvc.TemplateRow(t, ()) for t in inv.templates])
            return
        self._status("reading the hypervisors' pools…")
        self.run_read(lambda: tsvc.list_templates(session, inv), done=self.Listed, failed=self.ListFailed)

    @on(Listed)
    def _listed(self, event: Listed) -> None:
        self._fill(event.result)

    @on(ListFailed)
    def _list_failed(self, event: ListFailed) -> None:
        self._status(event.message)

    def _selected(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def action_add(self) -> None:
        if getattr(self.app, "readonly", False):
            self.notify("read-only console: templates cannot be added", severity="warning")
            return
        self.app.push_screen(TemplateAddDialog(), self._changed)

    def action_delete(self) -> None:
        if getattr(self.app, "readonly", False):
            self.notify("read-only console: templates cannot be deleted", severity="warning")
            return
        name = self._selected()
        if name:
            self.app.push_screen(TemplateDeleteDialog(name), self._changed)

    def _changed(self, new_inventory) -> None:
        if new_inventory is not None:
            self.app.inventory = new_inventory
            self.action_reload()


class TemplateAddDialog(FormScreen):
    """Upload a template. Dismisses with the new Inventory, or None. ctrl+s uploads, escape cancels."""

    DEFAULT_CSS = """
    TemplateAddDialog { align: center middle; background: $background 60%; }
    #tpl-add { width: 80; max-width: 100%; height: auto; max-height: 100%; border: thick $primary;
               background: $surface; padding: 0 1; }
    #tpl-add .row { height: auto; }
    #tpl-add .lbl { width: 10; color: $text-muted; }
    #tpl-add Input { width: 34; }
    #tpl-add .why { width: 1fr; padding-left: 1; color: $error; }
    #tpl-bars { height: auto; }
    #tpl-add-status { height: auto; }
    #tpl-add .buttons { height: 1; align-horizontal: right; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "upload", "Upload")]
    FIELDS = (("name", "Name", "debian13"), ("image", "Image", "/path/image.qcow2 or https://…"),
              ("sha256", "sha256", "pinned sum (empty: computed here)"), ("user", "User", "debian"),
              ("arch", "Arch", "x86_64"), ("boot", "Boot", "read from the image (bios|uefi|kernel)"),
              ("os", "OS", "linux"), ("kernel", "Kernel", "optional file"),
              ("initrd", "Initrd", "optional file"), ("cmdline", "Cmdline", "root=/dev/vda ro console=ttyS0"))

    class Added(ServiceDone):
        """``result`` is ``(new Inventory, the TemplateConfig added)`` from add_template."""

    class AddFailed(ServiceFailed):
        """add_template refused or failed (nothing is kept on any host)."""

    class Progress(Message):
        """Upload progress of one file to one host (posted from the worker thread)."""

        def __init__(self, host: str, label: str, sent: int, total: int) -> None:
            super().__init__()
            self.host, self.label, self.sent, self.total = host, label, sent, total  # bytes

    def __init__(self):
        super().__init__()
        self.bars: dict[str, ProgressBar] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="tpl-add"):
            yield Static("[b]Add a template[/b]")
            with VerticalScroll():
                for fid, label, placeholder in self.FIELDS:
                    value = {"user": "debian", "arch": "x86_64", "os": "linux"}.get(fid, "")
                    yield Horizontal(Label(label, classes="lbl"),
                                     Input(value=value, placeholder=placeholder, id=f"t-{fid}", compact=True),
                                     Static("", id=f"why-{fid}", classes="why"), classes="row")
            yield Vertical(id="tpl-bars")
            yield Static("", id="tpl-add-status")
            with Horizontal(classes="buttons"):
                yield Button("Upload (^s)", id="upload", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#t-name", Input).focus()
        self._check()

    def _v(self, fid: str) -> str:
        return self.query_one(f"#t-{fid}", Input).value.strip()

    def _check(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        inv = getattr(self.app, "inventory", None)
        if inv is not None:
            try:
                tsvc.check_template_name(inv, self._v("name"))
            except ValidationError as exc:
                errors["name"] = exc.reason
        url = self._is_url()
        for fid in ("image", "kernel", "initrd"):
            v = self._v(fid)
            if fid == "image" and url:
                continue  # each hypervisor downloads it
            if (v or fid == "image") and not os.path.isfile(os.path.expanduser(v)):
                errors[fid] = "not a readable file" if v else "required"
        if url and not self._v("sha256"):
            errors["sha256"] = "a URL is pinned by its sha256"
        if self._v("boot") not in ("", "bios", "uefi", "kernel"):
            errors["boot"] = "bios, uefi, kernel or empty"
        sha = self._v("sha256").lower()
        if sha and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
            errors["sha256"] = "64 hex digits"
        if (self._v("initrd") or self._v("cmdline")) and not self._v("kernel"):
            errors["kernel"] = "needed for initrd/cmdline"
        for fid, _l, _p in self.FIELDS:
            self.query_one(f"#why-{fid}", Static).update(escape(errors.get(fid, "")))
        self.query_one("#upload", Button).disabled = self.busy or bool(errors)
        return errors

    def _is_url(self) -> bool:
        return self._v("image").startswith(("http://", "https://", "ftp://"))

    @on(Input.Changed)
    def _changed(self) -> None:
        self._check()

    @on(Button.Pressed, "#upload")
    def _upload_pressed(self) -> None:
        self.action_upload()

    def action_upload(self) -> None:
        if self.busy or self._check():
            return
        session, inv = self.session, getattr(self.app, "inventory", None)
        if session is None or inv is None:
            self.query_one("#tpl-add-status", Static).update("not connected: nothing can be uploaded")
            return
        self.busy = True
        self._check()
        args = dict(sha256=self._v("sha256") or None, arch=self._v("arch") or "x86_64",
                    os_name=self._v("os") or "linux", default_user=self._v("user") or "debian",
                    kernel=self._v("kernel") or None, initrd=self._v("initrd") or None,
                    cmdline=self._v("cmdline") or None, boot=self._v("boot") or None)
        if self._is_url():
            args["url"] = self._v("image")
        name, image = self._v("name"), None if self._is_url() else os.path.expanduser(self._v("image"))
        self.query_one("#tpl-add-status", Static).update("checking the image's sha256 here…")

        def progress(host, label, sent, total):   # in the worker thread: post, never draw
            self.post_message(self.Progress(host, label, sent, total))
        self.run_service(lambda: tsvc.add_template(session, inv, name, image, progress=progress, **args),
                         done=self.Added, failed=self.AddFailed)

    @on(Progress)
    def _progress(self, event: Progress) -> None:
        host, label, sent, total = event.host, event.label, event.sent, event.total
        key = f"{host}-{label}".replace(".", "_")
        bar = self.bars.get(key)
        if bar is None:
            bar = ProgressBar(total=total, show_eta=False, id=f"bar-{key}")
            self.bars[key] = bar
            self.query_one("#tpl-bars", Vertical).mount(Horizontal(Label(f"{host} {label} ", classes="lbl"), bar,
                                                                   classes="row"))
        bar.update(total=total, progress=sent)
        self.query_one("#tpl-add-status", Static).update(escape(f"uploading {label} to {host}…"))

    @on(AddFailed)
    def _failed(self, event: AddFailed) -> None:
        self.busy = False
        self.query_one("#tpl-add-status", Static).update(f"[red]{escape(event.message)}[/red]")
        self._check()

    @on(Added)
    def _done(self, event: Added) -> None:
        new_inv, tpl = event.result
        self.busy = False
        self.app.notify(f"template {tpl.name} added (sha256 verified on every host)")
        self.dismiss(new_inv)


class TemplateDeleteDialog(ServiceRunner, ModalScreen):
    """Confirm and delete a template. ``y`` deletes, ``n``/escape cancels. Dismisses with the new
    Inventory, or None."""

    DEFAULT_CSS = """
    TemplateDeleteDialog { align: center middle; background: $background 60%; }
    #tpl-del { width: 64; max-width: 100%; height: auto; border: thick $error; background: $surface;
               padding: 0 1; }
    #tpl-del-status { height: auto; }
    """
    BINDINGS = [Binding("y", "yes", "Delete"), Binding("n,escape", "no", "Cancel")]

    class Deleted(ServiceDone):
        """``result`` is the new Inventory from delete_template."""

    class DeleteFailed(ServiceFailed):
        """delete_template refused (a VM disk uses it) or failed."""

    def __init__(self, name: str):
        super().__init__()
        self.name_ = name
        self.busy = False

    def compose(self) -> ComposeResult:
        with Vertical(id="tpl-del"):
            yield Static(f"Delete template [b]{escape(self.name_)}[/b] from every hypervisor? (y/n)")
            yield Static("", id="tpl-del-status")

    def action_no(self) -> None:
        if not self.busy:
            self.dismiss(None)

    def action_yes(self) -> None:
        if self.busy:
            return
        session, inv = getattr(self.app, "session", None), getattr(self.app, "inventory", None)
        if session is None or inv is None:
            self.query_one("#tpl-del-status", Static).update("not connected")
            return
        self.busy = True
        self.query_one("#tpl-del-status", Static).update("deleting…")
        name = self.name_
        self.run_service(lambda: tsvc.delete_template(session, inv, name), done=self.Deleted,
                         failed=self.DeleteFailed)

    @on(Deleted)
    def _deleted(self, event: Deleted) -> None:
        self.dismiss(event.result)

    @on(DeleteFailed)
    def _failed(self, event: DeleteFailed) -> None:
        self.busy = False
        self.query_one("#tpl-del-status", Static).update(f"[red]{escape(event.message)}[/red]  (n closes)")
