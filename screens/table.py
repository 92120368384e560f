"""CloudTable: a keyboard-first, virtual table that renders only the rows on screen.

Textual's DataTable measures every cell of every row when rows change (~1 s for 3,000 VMs);
this table keeps plain rows (:class:`Row`), sizes columns from string lengths, and draws
just the visible lines (Line API), so replacing all rows costs milliseconds whatever the count.

Keys: ↑/↓ (k/j), PgUp/PgDn, Home/End (g/G). The highlighted row's key is posted as
:class:`CloudTable.Highlighted` whenever it changes; Enter posts :class:`CloudTable.Selected`.
A click on a row highlights it (a second click on the highlighted row selects it, as Enter).

Sorting (k9s/htop-like): ``>`` / ``<`` sort by the next / previous column (starting from the
order the rows were given in, e.g. host then name), ``~`` reverses; a click on a header sorts by
that column, a second click reverses. The header shows the column and direction (``Name▲``).
Cells sort naturally: runs of digits compare as numbers (``web-2`` before ``web-10``, ``512``
before ``2048``), the rest case-insensitively.

The cursor sticks to the top while rows arrive (hosts answer in any order) until the operator
moves it (a key, a click, :meth:`select_key`); after that it follows its row's key.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from operator import itemgetter
from typing import Callable, Sequence

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip


@dataclass(frozen=True)
class Column:
    """A column: ``key``, header ``label``, ``min``/``max`` width, ``right`` aligned,
    ``flex`` (takes the space left / gives it up first), ``style`` (cell text → Rich style
    string, e.g. colour by state), ``hide_below``: hidden while the table is narrower than
    that many cells (k9s's wide columns: figures that matter less than the name and state at
    80 columns)."""

    key: str
    label: str
    min: int = 3
    max: int = 40
    right: bool = False
    flex: bool = False
    style: Callable[[str], str] | None = None
    hide_below: int = 0


_NUM = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple:
    """Sort key of one cell: digit runs as numbers, the rest lower-cased; an empty or ``-``
    cell sorts after every other (``"web-10"`` → ``("web-", 10, "")``)."""
    if text in ("", "-", "?"):
        return (1,)
    parts = _NUM.split(text.lower())
    return (0, *(int(p) if i % 2 else p for i, p in enumerate(parts)))


#: Cells the first column (a row's name) keeps while other columns can still give up space.
NAME_KEEP = 12

class _Order:
    """Where a row sorts: its cell's natural key, then its given index (ties keep the given
    order); ``reverse`` flips the cells' order, not the ties'."""

    __slots__ = ("cell", "at", "reverse")

    def __init__(self, cell: tuple, at: int, reverse: bool):
        self.cell, self.at, self.reverse = cell, at, reverse

    def __lt__(self, other: "_Order") -> bool:
        if self.cell != other.cell:
            return (self.cell > other.cell) if self.reverse else (self.cell < other.cell)
        return self.at < other.at


#: Markers after the sorted column's label.
SORT_MARK = {False: "▲", True: "▼"}


@dataclass(frozen=True, slots=True)
class Row:
    """A row: a stable ``key`` (e.g. ``vm:hv1:UUID``), its cells as plain text, and the text
    a ``/`` filter searches (defaults to the cells joined). Slots: one per VM, 10,000 at once."""

    key: str
    cells: tuple[str, ...]
    search: str = ""

    @property
    def text(self) -> str:
        return self.search or " ".join(self.cells)


class CloudTable(ScrollView, can_focus=True):
    """Virtual table of :class:`Row` under a fixed header line (see module doc)."""

    COMPONENT_CLASSES = {"cloud-table--header", "cloud-table--cursor", "cloud-table--odd",
                         "cloud-table--empty"}

    DEFAULT_CSS = """
    CloudTable { height: 1fr; scrollbar-size-vertical: 1; overflow-x: hidden; }
    CloudTable > .cloud-table--header { text-style: bold; color: $text-accent; }
    CloudTable > .cloud-table--cursor { background: $surface-lighten-1; }
    CloudTable:focus > .cloud-table--cursor { background: $accent 60%; text-style: bold; }
    CloudTable > .cloud-table--odd { background: $surface-darken-1 40%; }
    CloudTable > .cloud-table--empty { color: $text-muted; text-style: italic; }
    """

    BINDINGS = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "edge(0)", "First row", show=False),
        Binding("end,G", "edge(1)", "Last row", show=False),
        Binding("enter", "select", "Details", show=False),
        Binding("greater_than_sign", "sort(1)", "Sort by next column", key_display=">", show=False),
        Binding("less_than_sign", "sort(-1)", "Sort by previous column", key_display="<", show=False),
        Binding("tilde", "sort_reverse", "Reverse the sort", key_display="~", show=False),
    ]

    cursor = reactive(0, repaint=False, init=False)

    class Highlighted(Message):
        """The highlighted row changed: ``key`` (None when the table is empty)."""

        def __init__(self, table: "CloudTable", key: str | None):
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> "CloudTable":
            return self.table

    class Selected(Highlighted):
        """Enter was pressed on row ``key``."""

    def __init__(self, columns: Sequence[Column], *, empty: str = "nothing here",
                 name: str | None = None, id: str | None = None, classes: str | None = None):
        super().__init__(name=name, id=id, classes=classes)
        self.columns = tuple(columns)
        self.rows: tuple[Row, ...] = ()
        self._given: tuple[Row, ...] = ()
        self.empty_text = empty
        #: sorted column's index (None: the order rows were given in) and direction
        self.sort_column: int | None = None
        self.sort_reverse = False
        #: the operator moved the cursor (keys, click, select_key): until then it stays on top
        self.moved = False
        self._widths: list[int] = [c.min for c in self.columns]
        self._shown_columns: list[int] = list(range(len(self.columns)))   # not hidden by width
        self._natural: list[int] = [max(c.min, len(c.label)) for c in self.columns]
        self._index: dict[str, int] = {}
        self._last_key: str | None = None
        self._styles: tuple | None = None
        self._lens: dict[int, tuple[Row, tuple[int, ...]]] = {}
        self._cell_styles: dict[tuple, Style] = {}
        self._sort_keys: tuple[int | None, dict] = (None, {})
        self._sorted_for: tuple = (None, (), ())     # (sort, given rows, their sorted order)
        self._given_at: dict[str, int] | None = None  # key → given index, while the keys stay

    # -- data ------------------------------------------------------------------------------

    def set_rows(self, rows: Sequence[Row]) -> None:
        """Replace every row (shown in the current sort order). Until the operator moves the
        cursor it stays on the first row; after that it stays on the same key when that is
        still there.

        When the keys are the same, in the same order, as the last call's (a metrics snapshot:
        a few running VMs' figures moved among thousands of rows), only the rows whose cells
        differ are replaced, moved to their sort position if the sorted cell changed, and
        redrawn if on screen; added or removed rows rebuild the whole table."""
        given = tuple(rows)
        if not self._update_rows(given):
            self._given = given
            self._place_rows()

    def _update_rows(self, given: tuple[Row, ...]) -> bool:
        """The incremental path of :meth:`set_rows`; False (nothing changed here) when the
        keys differ from the shown ones and a full rebuild is needed."""
        old = self._given
        if len(old) != len(given) or not old or len(self.rows) != len(old):
            return False
        changed = [i for i, (a, b) in enumerate(zip(old, given)) if a is not b]
        if any(old[i].key != given[i].key for i in changed):
            return False
        if not changed:
            return True
        col = self.sort_column
        keys = self._sort_keys[1] if col is not None and self._sort_keys[0] == col else None
        if col is not None and keys is None:
            return False            # no sort keys kept for this column: the full path makes them
        cursor_key = self.cursor_key
        self._given = given
        rows = list(self.rows)
        moving: list[Row] = []
        for i in changed:
            a, b = old[i], given[i]
            rows[self._index[a.key]] = b
            if keys is not None:
                hit = keys.pop(id(a), None)
                if a.cells[col] != b.cells[col] or hit is None or hit[0] is not a:
                    moving.append(b)
                    keys[id(b)] = (b, natural_key(b.cells[col]))
                else:
                    keys[id(b)] = (b, hit[1])
        resort = bool(moving)
        if resort:
            # take the rows whose sorted cell changed out and insert each at its place (a
            # binary search); ties keep the given order, as the full sort's do
            if self._given_at is None:
                self._given_at = {r.key: i for i, r in enumerate(given)}
            at, reverse = self._given_at, self.sort_reverse

            def order(r: Row) -> _Order:
                return _Order(keys[id(r)][1], at[r.key], reverse)
            out = {id(r) for r in moving}
            rows = [r for r in rows if id(r) not in out]
            for r in moving:
                bisect.insort(rows, r, key=order)
            self._index = {r.key: i for i, r in enumerate(rows)}
        self.rows = tuple(rows)
        if col is not None:
            self._sorted_for = ((col, self.sort_reverse), self._given, self.rows)
        # column widths: grow to a longer cell; a column whose widest cell got shorter is
        # measured again
        lens = self._lens
        natural = list(self._natural)
        remeasure: set[int] = set()
        for i in changed:
            a, b = old[i], given[i]
            hit = lens.pop(id(a), None)
            before = hit[1] if hit is not None and hit[0] is a else tuple(map(len, a.cells))
            after = tuple(map(len, b.cells))
            lens[id(b)] = (b, after)
            for c, (x, y) in enumerate(zip(before, after)):
                if x != y:
                    remeasure.add(c)
        for c in remeasure:
            column = self.columns[c]
            label = len(self._label(c))
            widest = max((v[1][c] for v in lens.values()), default=0)
            natural[c] = max(label, min(column.max, max(column.min, label, widest)))
        relayout = natural != self._natural
        if relayout:
            self._natural = natural
            self._fit()
        if self.moved and resort and cursor_key is not None:
            self.set_cursor(self._index[cursor_key], post=False)    # it follows its row
        self._post_if_changed()
        if relayout or resort:
            self.refresh()
        else:
            # rows rebuilt with the same cells (new objects) need no redraw
            self._refresh_rows([self._index[given[i].key] for i in changed
                                if given[i].cells != old[i].cells])
        return True

    def _refresh_rows(self, indexes: list[int]) -> None:
        """Redraw just the rows at ``indexes`` that are on screen (one line each)."""
        top = int(self.scroll_offset.y)
        height = max(0, self.scrollable_content_region.height - 1)
        shown = [i for i in indexes if top <= i < top + height]
        if len(shown) > height // 2:
            self.refresh()
            return
        for index in shown:
            self.refresh_lines(index + 1)       # line 0 is the header

    def _sorted(self) -> tuple[Row, ...]:
        col = self.sort_column
        if col is None:
            return self._given
        done = self._sorted_for
        if done[0] == (col, self.sort_reverse) and len(done[1]) == len(self._given) and \
                all(a is b for a, b in zip(done[1], self._given)):
            return done[2]          # the same rows again (another panel's change): same order
        # keys kept by row identity, as the lengths are (one changed VM among thousands
        # computes one key); the sort is stable: ties keep the given order (host then name)
        old = self._sort_keys[1] if self._sort_keys[0] == col else {}
        keys: dict[int, tuple[Row, tuple]] = {}
        for r in self._given:
            hit = old.get(id(r))
            keys[id(r)] = hit if hit is not None and hit[0] is r else (r, natural_key(r.cells[col]))
        self._sort_keys = (col, keys)
        out = tuple(sorted(self._given, key=lambda r: keys[id(r)][1], reverse=self.sort_reverse))
        self._sorted_for = ((col, self.sort_reverse), self._given, out)
        return out

    def _place_rows(self) -> None:
        key = self.cursor_key if self.moved else None
        self._given_at = None
        self.rows = self._sorted()
        self._index = {r.key: i for i, r in enumerate(self.rows)}
        # cell lengths per row, kept by row identity (callers reuse unchanged Row objects)
        old_lens, lens = self._lens, {}
        for r in self.rows:
            hit = old_lens.get(id(r))
            lens[id(r)] = hit if hit is not None and hit[0] is r else (r, tuple(map(len, r.cells)))
        self._lens = lens
        # each column's widest cell, one C-level pass per column (zip(*rows) to transpose
        # 10,000 rows was ~2/3 of this method, measured with py-spy on define/undefine events)
        widths = [v[1] for v in lens.values()]
        cells = min(map(len, widths)) if widths else len(self.columns)   # as zip() cut short
        natural = []
        for i, c in enumerate(self.columns[:cells]):
            label = len(self._label(i))     # the sort marker stays visible
            widest = max(map(itemgetter(i), widths), default=0)
            natural.append(max(label, min(c.max, max(c.min, label, widest))))
        self._natural = natural
        self._fit()
        self.virtual_size = Size(self.size.width, len(self.rows) + 1)
        if not self.moved:
            self.set_cursor(0, post=False)
        elif key is not None and key in self._index:
            self.set_cursor(self._index[key], post=False)
        else:
            self.set_cursor(min(self.cursor, max(0, len(self.rows) - 1)), post=False)
        self._post_if_changed()
        self.refresh()

    def sort_by(self, column: int | None, reverse: bool = False) -> None:
        """Sort by column index ``column`` (None: the order the rows were given in), descending
        when ``reverse``; the cursor keeps its row when the operator had moved it."""
        if column is not None and not 0 <= column < len(self.columns):
            raise IndexError(f"column {column}: this table has {len(self.columns)} columns")
        self.sort_column, self.sort_reverse = column, reverse
        self._place_rows()

    def has_key(self, key: str) -> bool:
        """True when row ``key`` is shown (after filtering)."""
        return key in self._index

    @property
    def cursor_key(self) -> str | None:
        """Key of the highlighted row (None when empty)."""
        if 0 <= self.cursor < len(self.rows):
            return self.rows[self.cursor].key
        return None

    def select_key(self, key: str) -> bool:
        """Move the cursor to row ``key`` (an operator's move: it sticks to that row); False if
        it is not shown."""
        i = self._index.get(key)
        if i is None:
            return False
        self.moved = True
        self.set_cursor(i)
        return True

    def set_cursor(self, index: int, post: bool = True) -> None:
        """Highlight row ``index`` (clamped) and scroll to it; ``post`` (a move by the operator,
        which the cursor then sticks to) posts Highlighted when the key changed."""
        if post:
            self.moved = True
        index = max(0, min(index, len(self.rows) - 1)) if self.rows else 0
        self.cursor = index
        self._scroll_to_cursor()
        self.refresh()
        if post:
            self._post_if_changed()

    def _post_if_changed(self) -> None:
        key = self.cursor_key
        if key != self._last_key:
            self._last_key = key
            self.post_message(self.Highlighted(self, key))

    # -- layout ----------------------------------------------------------------------------

    def _fit(self) -> None:
        avail = max(10, self.scrollable_content_region.width or self.size.width or 80)
        shown = [i for i, c in enumerate(self.columns) if avail >= c.hide_below]
        self._shown_columns = shown
        widths = [n if i in shown else 0 for i, n in enumerate(self._natural)]
        over = sum(widths) + len(shown) - 1 - avail
        # give up space, never below a column's min: flex columns first; then the others one
        # cell at a time from the widest, so no single column (a long VM name) is cut to its
        # min while the others keep their width
        for i in (i for i in shown if self.columns[i].flex):
            take = max(0, min(over, widths[i] - self.columns[i].min))
            widths[i] -= take
            over -= take
        # the first column (the row's name) keeps NAME_KEEP cells until the others are at their min
        rest = [i for i in shown if not self.columns[i].flex]
        soft = [c.min for c in self.columns]
        if rest and rest[0] == 0:
            soft[0] = max(soft[0], min(widths[0], NAME_KEEP))
        for floor in (soft, [c.min for c in self.columns]):
            while over > 0:
                cut = [i for i in rest if widths[i] > floor[i]]
                if not cut:
                    break
                widest = max(cut, key=lambda i: widths[i])
                widths[widest] -= 1
                over -= 1
        if over < 0:  # room to spare: the flex column takes it
            flex = [i for i in shown if self.columns[i].flex]
            if flex:
                widths[flex[-1]] += -over
        self._widths = widths

    def on_resize(self) -> None:
        self._fit()
        self.virtual_size = Size(self.size.width, len(self.rows) + 1)
        self._scroll_to_cursor()
        self.refresh()

    def _scroll_to_cursor(self) -> None:
        height = max(1, self.scrollable_content_region.height - 1)
        top = int(self.scroll_offset.y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)

    # -- drawing ---------------------------------------------------------------------------

    def _cell(self, text: str, width: int, right: bool) -> str:
        if len(text) > width:
            text = text[: max(0, width - 1)] + "…" if width > 1 else text[:width]
        return text.rjust(width) if right else text.ljust(width)

    def _line(self, cells: Sequence[str], base: Style, styled: bool) -> list[Segment]:
        segs: list[Segment] = []
        for i in self._shown_columns:
            c, w = self.columns[i], self._widths[i]
            if segs:
                segs.append(Segment(" ", base))
            text = self._cell(cells[i], w, c.right)
            style = base
            if styled and c.style is not None:
                extra = c.style(cells[i])
                if extra:
                    style = self._cell_styles.get((base, extra))
                    if style is None:
                        style = self._cell_styles[(base, extra)] = base + Style.parse(extra)
            segs.append(Segment(text, style))
        return segs

    def _line_styles(self) -> tuple[Style, Style, Style, Style, Style]:
        """(base, header, odd, cursor, empty) — computed once per style change/focus change
        (``rich_style`` walks the CSS; per line it cost ~0.5 ms)."""
        if self._styles is None:
            base = self.rich_style
            comp = self.get_component_rich_style
            self._styles = (base, base + comp("cloud-table--header"), base + comp("cloud-table--odd"),
                            base + comp("cloud-table--cursor"), base + comp("cloud-table--empty"))
            self._cell_styles = {}
        return self._styles

    def notify_style_update(self) -> None:
        self._styles = None
        super().notify_style_update()

    def _on_focus(self, event) -> None:
        self._styles = None
        super()._on_focus(event)

    def _on_blur(self, event) -> None:
        self._styles = None
        super()._on_blur(event)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        base, header, odd, cursor, empty = self._line_styles()
        if y == 0:
            return Strip(self._line([self._label(i) for i in range(len(self.columns))], header, False)) \
                .adjust_cell_length(width, header)
        index = int(self.scroll_offset.y) + y - 1
        if not self.rows:
            if y == 1:
                return Strip([Segment(self.empty_text, empty)]).adjust_cell_length(width, base)
            return Strip.blank(width, base)
        if index >= len(self.rows):
            return Strip.blank(width, base)
        style = cursor if index == self.cursor else odd if index % 2 else base
        return Strip(self._line(self.rows[index].cells, style, True)).adjust_cell_length(width, style)

    # -- actions ---------------------------------------------------------------------------

    def _label(self, i: int) -> str:
        """Column ``i``'s header text, with the sort marker when it is the sorted one."""
        label = self.columns[i].label
        return label + SORT_MARK[self.sort_reverse] if i == self.sort_column else label

    def action_cursor(self, delta: int) -> None:
        self.moved = True
        self.set_cursor(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self.moved = True
        self.set_cursor(self.cursor + direction * max(1, self.scrollable_content_region.height - 2))

    def action_edge(self, end: int) -> None:
        self.moved = True
        self.set_cursor(len(self.rows) - 1 if end else 0)

    def action_sort(self, delta: int) -> None:
        """Sort by the next (``delta`` 1) / previous (-1) column; past the last or before the
        first comes the given order again."""
        order = [*self._shown_columns, None]       # hidden columns are skipped
        cur = order.index(self.sort_column) if self.sort_column in order else len(order) - 1
        nxt = order[(cur + delta) % len(order)]
        self.sort_by(nxt, self.sort_reverse if nxt is not None else False)

    def action_sort_reverse(self) -> None:
        self.sort_by(0 if self.sort_column is None else self.sort_column, not self.sort_reverse)

    def column_at(self, x: int) -> int | None:
        """The index of the column drawn at content offset ``x`` (cells), or None (a gap)."""
        left = 0
        for i in self._shown_columns:
            w = self._widths[i]
            if left <= x < left + w:
                return i
            left += w + 1
        return None

    def on_click(self, event: events.Click) -> None:
        """Header: sort by the clicked column (again: reverse). Row: highlight it; a click on
        the highlighted row selects it (as Enter)."""
        offset = event.get_content_offset(self)
        if offset is None:
            return
        event.stop()
        if offset.y == 0:
            col = self.column_at(offset.x)
            if col is not None:
                self.sort_by(col, not self.sort_reverse if col == self.sort_column else False)
            return
        index = int(self.scroll_offset.y) + offset.y - 1
        if 0 <= index < len(self.rows):
            again = index == self.cursor and self.moved
            self.moved = True
            self.set_cursor(index)
            if again or event.chain > 1:
                self.action_select()

    def action_select(self) -> None:
        self.post_message(self.Selected(self, self.cursor_key))
