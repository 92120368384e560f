"""How every CLI verb prints: one output-format choice, one table renderer, one structured printer.

Every verb accepts ``--json`` and ``-o/--output table|json|yaml`` in every position (before the
group, after the group, after the verb: :func:`add_format_args` adds them to each parser, the
top-level one with real defaults and the others with ``argparse.SUPPRESS`` so a value given
earlier survives). :func:`normalise` (run once by console/cli.py ``main``) turns them into
``args.output`` (``"table"``, ``"json"`` or ``"yaml"``; ``-o wide`` is a table with ``--wide``)
and ``args.json`` (True for json and yaml, so a handler's machine-readable path runs for both).

A handler prints with:

- :func:`emit` ``(args, obj, text_lines)``: ``obj`` as JSON/YAML, else the text lines;
- :func:`print_data` ``(args, obj)``: ``obj`` as JSON or YAML (JSON when the format is table);
- :func:`table` ``(args, columns, rows, empty=…)``: a listing; JSON/YAML of ``rows`` as given
  (dicts), else a rich table that fits the terminal (80 columns when stdout is not a terminal;
  long cells end in ``…``), all columns in full with ``--wide``, no colour when not a terminal.

Exit statuses come from :class:`console.errors.ExitCode`; a listing that misses part of the
cloud (a host unreachable) prints what it has, warns with :func:`warn` and returns
``ExitCode.UNREACHABLE``. New verb groups (``check``, ``top``) use these helpers the same way.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from .errors import ExitCode  # noqa: F401  (re-exported: a handler returns output.ExitCode.…)

FORMATS = ("table", "json", "yaml")
#: ``-o`` choices: the formats, and ``wide`` (kubectl's spelling of a table with every column)
OUTPUT_CHOICES = ("table", "wide", "json", "yaml")
#: Width of a table when stdout is not a terminal (a pipe, a file, cron).
PIPE_WIDTH = 80


def add_format_args(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """Add ``--json``, ``-o/--output`` and ``--wide`` to ``parser`` (skipping any it already has).

    ``top``: the top-level parser gets real defaults; sub-parsers get ``SUPPRESS`` defaults so a
    flag given before the group or the verb is not reset by a later parser."""
    have = {s for a in parser._actions for s in a.option_strings}
    dflt = (lambda v: v) if top else (lambda v: argparse.SUPPRESS)
    if "--json" not in have:
        parser.add_argument("--json", action="store_true", default=dflt(False),
                            help="JSON output (same as -o json)")
    if "--output" not in have and "-o" not in have:
        parser.add_argument("-o", "--output", choices=OUTPUT_CHOICES, default=dflt(None),
                            help="output format: table (text), wide (= --wide), json or yaml")
    if "--wide" not in have:
        parser.add_argument("--wide", action="store_true", default=dflt(False),
                            help="tables: every column in full, however wide")


def normalise(args: argparse.Namespace) -> None:
    """Settle ``args.output`` (``-o`` wins over ``--json``) and ``args.json`` (True for json
    and yaml) once, after parsing."""
    out = getattr(args, "output", None) or ("json" if getattr(args, "json", False) else "table")
    args.wide = bool(getattr(args, "wide", False)) or out == "wide"
    args.output = "table" if out == "wide" else out
    args.json = args.output in ("json", "yaml")


def fmt(args) -> str:
    """The output format: ``"table"``, ``"json"`` or ``"yaml"``."""
    out = getattr(args, "output", None)
    return out if out in FORMATS else ("json" if getattr(args, "json", False) else "table")


def to_plain(obj: Any) -> Any:
    """``obj`` as JSON-safe data (tuples → lists, unknown objects → ``str``)."""
    return json.loads(json.dumps(obj, default=str))


def print_data(args, obj: Any, stream=None) -> None:
    """Print ``obj`` as YAML under ``-o yaml``, else as indented JSON (one trailing newline)."""
    stream = stream or sys.stdout
    if fmt(args) == "yaml":
        import yaml
        yaml.safe_dump(to_plain(obj), stream, sort_keys=False, default_flow_style=False, allow_unicode=True)
    else:
        json.dump(obj, stream, indent=2, default=str)
        stream.write("\n")


def emit(args, obj: Any, text_lines: Iterable[str]) -> None:
    """``obj`` as JSON/YAML when asked for, else the text lines."""
    if fmt(args) != "table":
        print_data(args, obj)
    else:
        for line in text_lines:
            print(line)


def warn(message: str) -> None:
    """One ``virtdeck: message`` line on stderr (partial results, skipped hosts)."""
    print(f"virtdeck: {message}", file=sys.stderr)


@dataclass(frozen=True)
class Column:
    """One table column: ``header``; ``get``: row dict → cell (str() is applied; None → ``-``);
    ``fixed``: never truncated (states, numbers); ``right``: right-aligned (numbers);
    ``wide_only``: shown only with ``--wide``; ``wrap``: a long cell wraps onto more lines
    instead of ending in ``…`` (reasons the operator must read in full)."""

    header: str
    get: Callable[[dict], Any]
    fixed: bool = False
    right: bool = False
    wide_only: bool = False
    wrap: bool = False


def col(header: str, key: str | Callable[[dict], Any], **kw) -> Column:
    """A :class:`Column` reading ``row[key]`` (or calling ``key(row)``)."""
    get = key if callable(key) else (lambda r, k=key: r.get(k))
    return Column(header, get, **kw)


def _cell(v: Any) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v) or "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def table_width(args) -> int | None:
    """Columns a table may use: None with --wide, the terminal's width on a terminal, else 80."""
    if getattr(args, "wide", False):
        return None
    if sys.stdout.isatty():
        return shutil.get_terminal_size((PIPE_WIDTH, 24)).columns
    return PIPE_WIDTH


def render_table(columns: Sequence[Column], rows: Sequence[dict], width: int | None,
                 colour: bool = False) -> list[str]:
    """The table as text lines, each at most ``width`` columns (None: no limit), trailing blanks
    cut. Flexible columns shrink first and end in ``…`` (or wrap: ``Column.wrap``); fixed ones
    keep their full width."""
    from rich.console import Console
    from rich.table import Table

    cells = [[_cell(c.get(r)) for c in columns] for r in rows]
    widths = [max([len(c.header)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    if width is not None:
        # shrink the widest flexible column one step at a time (fixed columns keep their width;
        # a flexible one keeps at least its header, and 4 characters)
        room = width - 2 * (len(columns) - 1)
        floor = [w if c.fixed else min(w, max(len(c.header), 4)) for c, w in zip(columns, widths)]
        while sum(widths) > room:
            i = max((i for i, c in enumerate(columns) if widths[i] > floor[i]), key=lambda i: widths[i], default=None)
            if i is None:
                break
            widths[i] -= 1
    t = Table(box=None, show_edge=False, pad_edge=False, expand=False, padding=(0, 1),
              header_style="bold" if colour else None)
    for c, w in zip(columns, widths):
        t.add_column(c.header, no_wrap=not c.wrap, overflow="fold" if c.wrap else "ellipsis",
                     justify="right" if c.right else "left", width=w, min_width=w, max_width=w)
    for row in cells:
        t.add_row(*row)
    buf = io.StringIO()
    con = Console(file=buf, width=sum(widths) + 2 * len(widths), no_color=not colour, color_system="standard" if colour else None,
                  force_terminal=colour, highlight=False, markup=False, emoji=False, soft_wrap=False)
    con.print(t)
    return [line.rstrip() for line in buf.getvalue().splitlines()]


def table(args, columns: Sequence[Column], rows: Sequence[dict], empty: str = "nothing to list",
          data: Any = None) -> None:
    """Print a listing: ``data`` (default: ``rows``) as JSON/YAML when asked for, else the table
    (columns marked ``wide_only`` only with ``--wide``), or the ``empty`` sentence."""
    if fmt(args) != "table":
        print_data(args, rows if data is None else data)
        return
    if not rows:
        print(empty)
        return
    wide = getattr(args, "wide", False)
    cols = [c for c in columns if wide or not c.wide_only]
    colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    for line in render_table(cols, rows, table_width(args), colour=colour):
        print(line)
