"""The command line's shared conventions, without the lab: every verb of the registry takes
--json / -o / --wide in every position, the exit-code table is unique and printed by --help,
tables fit their width, --version, the completion scripts and argcomplete's dynamic names
(through the real `virtdeck` script), the audit reader on a real file."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from virtdeck.console import output, verbs
from virtdeck.console.cli import build_parser, main
from virtdeck.console.errors import EXIT_CODE_TEXT, ExitCode, VirtdeckError
from virtdeck.console.services import audit_read

VIRTDECK = str(Path(sys.executable).with_name("virtdeck"))
ALL = verbs.all_verbs()


def _positionals(verb) -> list[str]:
    """Placeholder values for the verb's required positional arguments."""
    out = []
    for a in verb.args:
        if a.flags[0].startswith("-") or a.opts.get("nargs") in ("?", "*"):
            continue
        choices = a.opts.get("choices")
        out.append(str(next(iter(choices))) if choices else "x1")
    return out


def _required_options(verb) -> list[str]:
    out = []
    for a in verb.args:
        if a.flags[0].startswith("-") and a.opts.get("required"):
            out += [a.flags[0], "x1"]
    return out


@pytest.mark.parametrize("verb", ALL, ids=lambda v: v.name)
def test_json_and_output_flags_parse_in_every_position(verb):
    words = verb.name.split()
    rest = [*_positionals(verb), *_required_options(verb)]
    parser = build_parser()
    spots = [["--json", *words, *rest],                        # before the group
             [*words, *rest, "--json"]]                        # after the verb
    if len(words) > 1:
        spots.append([words[0], "--json", *words[1:], *rest])  # after the group
    for argv in spots:
        args = parser.parse_args(argv)
        output.normalise(args)
        assert (args.json, args.output) == (True, "json"), argv
    for argv in (["-o", "yaml", *words, *rest], [*words, *rest, "-o", "yaml", "--wide"]):
        args = parser.parse_args(argv)
        output.normalise(args)
        assert (args.json, args.output) == (True, "yaml"), argv
    args = parser.parse_args([*words, *rest])
    output.normalise(args)
    assert (args.json, args.output, args.wide) == (False, "table", False)
    args = parser.parse_args([*words, *rest, "-o", "wide"])  # kubectl's spelling
    output.normalise(args)
    assert (args.json, args.output, args.wide) == (False, "table", True)


def test_exit_codes_are_unique_and_in_help_and_readme(capsys):
    codes = [int(c) for c in ExitCode]
    assert len(codes) == len(set(codes)) and set(EXIT_CODE_TEXT) == set(ExitCode)
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for c in ExitCode:
        assert f"{int(c):>3}  {EXIT_CODE_TEXT[c]}" in text
        assert f"| {int(c)} | {EXIT_CODE_TEXT[c]} |" in readme
    # every error class that declares a code uses one of the table's
    import virtdeck.console.services.provision  # noqa: F401  (load the classes that declare codes)
    import virtdeck.console.services.vm_power  # noqa: F401
    import virtdeck.backends.ovn.rows  # noqa: F401

    def subclasses(c):
        for s in c.__subclasses__():
            yield s
            yield from subclasses(s)
    for cls in subclasses(VirtdeckError):
        assert cls.exit_code in set(ExitCode), cls


def test_usage_error_and_version():
    p = subprocess.run([VIRTDECK, "vm", "frobnicate"], capture_output=True, text=True, timeout=30)
    assert p.returncode == ExitCode.USAGE and "invalid choice" in p.stderr
    p = subprocess.run([VIRTDECK, "--version"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stdout.startswith("virtdeck ")


@pytest.mark.parametrize("verb", [v for v in ALL if v.examples], ids=lambda v: v.name)
def test_examples_are_in_help_and_parse(verb, capsys):
    with pytest.raises(SystemExit):
        main([*verb.name.split(), "--help"])
    text = capsys.readouterr().out
    assert "examples:\n" in text
    for e in verb.examples:
        assert e in text
        if "..." in e or "<" in e:
            continue  # an elided or placeholder example
        build_parser().parse_args(shlex.split(e.split("  #")[0])[1:])  # a valid command line


def test_tables_fit_the_width_and_wide_shows_all():
    cols = (output.col("NAME", "name"), output.col("STATE", "state", fixed=True),
            output.col("RAM MiB", "mem", fixed=True, right=True), output.col("TENANT", "tenant"),
            output.col("IPS", "ips"), output.col("EXTRA", "extra", wide_only=True))
    rows = [{"name": "vm-" + "n" * 90, "state": "running", "mem": 2048, "tenant": "t" * 40,
             "ips": ["10.0.0.1", "10.0.0.2"], "extra": "e" * 30},
            {"name": "b", "state": "shut off", "mem": 256, "tenant": None, "ips": [], "extra": None}]
    lines = output.render_table(cols[:5], rows, 80)
    assert all(len(line) <= 80 for line in lines), lines
    assert "…" in lines[1] and "running" in lines[1] and "2048" in lines[1]  # fixed columns whole
    assert lines[0].split() == ["NAME", "STATE", "RAM", "MiB", "TENANT", "IPS"]
    assert lines[2].split()[1:] == ["shut", "off", "256", "-", "-"]
    wide = output.render_table(cols, rows, None)
    assert rows[0]["name"] in wide[1] and "e" * 30 in wide[1] and "…" not in "".join(wide)
    wrapped = output.render_table((output.col("HOST", "name"), output.col("WHY", "tenant", wrap=True)),
                                  [{"name": "hv1", "tenant": "why " * 40}], 40)
    assert all(len(line) <= 40 for line in wrapped) and len(wrapped) > 3 and "…" not in "".join(wrapped)


def test_completion_scripts_and_dynamic_names(tmp_path):
    for shell, marker in (("bash", "complete "), ("zsh", "#compdef virtdeck"), ("fish", "complete --command virtdeck")):
        p = subprocess.run([VIRTDECK, "completion", shell], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0 and marker in p.stdout, (shell, p.stdout[:200])
    inv = tmp_path / "inventory.toml"
    inv.write_text('[[hosts]]\nname = "hvone"\naddress = "127.0.0.1"\n\n'
                   '[[hosts]]\nname = "jump"\naddress = "127.0.0.1"\nhypervisor = false\n\n'
                   '[[templates]]\nname = "deb12"\nvolume = "d.qcow2"\nsha256 = "' + "a" * 64 + '"\n')
    cache = tmp_path / "cache"
    (cache / "virtdeck").mkdir(parents=True)
    (cache / "virtdeck" / "names.json").write_text(json.dumps({"vms": ["web1", "web2", "db1"], "networks": ["net9"]}))

    def complete(line: str) -> list[str]:
        out = tmp_path / "out"
        env = dict(os.environ, _ARGCOMPLETE="1", COMP_LINE=line, COMP_POINT=str(len(line)),
                   _ARGCOMPLETE_STDOUT_FILENAME=str(out), VIRTDECK_CONFIG=str(inv), XDG_CACHE_HOME=str(cache))
        p = subprocess.run([VIRTDECK], env=env, capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        return sorted(w.strip() for w in out.read_text().split("\x0b") if w.strip())

    assert complete("virtdeck vm start --host ") == ["hvone"]            # hypervisors only
    assert complete("virtdeck host show ") == ["hvone", "jump"]          # every host
    assert complete("virtdeck vm start we") == ["web1", "web2"]          # the last vm list
    assert complete("virtdeck vm create x --template ") == ["deb12"]
    assert complete("virtdeck network show ") == ["net9"]
    assert complete("virtdeck router sn") == ["snat", "snat-del"]


def _write_audit(path: Path) -> None:
    now = datetime.now(timezone.utc)
    recs = [(now - timedelta(days=2), "alice@jump", "vm.create", "vm demo/web1", "ok"),
            (now - timedelta(hours=3), "bob@jump", "vm.delete", "vm demo/web1", "ok"),
            (now - timedelta(minutes=5), "alice@jump", "network.create", "network demo/web", "ok")]
    lines = [json.dumps({"time": t.isoformat(timespec="milliseconds"), "operator": o, "verb": v, "target": g,
                         "outcome": r}) for t, o, v, g, r in recs]
    path.write_text("\n".join([lines[0], "not json", *lines[1:]]) + "\n")


def test_audit_filters(tmp_path, monkeypatch, capsys):
    path = tmp_path / "audit.jsonl"
    _write_audit(path)
    pick = lambda **kw: [(r["operator"], r["verb"]) for r in audit_read.read(path, **kw)["records"]]  # noqa: E731
    assert audit_read.read(path)["skipped"] == 1
    assert pick(operator="alice") == [("alice@jump", "vm.create"), ("alice@jump", "network.create")]
    assert pick(verb="vm") == [("alice@jump", "vm.create"), ("bob@jump", "vm.delete")]
    assert pick(verb="vm delete") == [("bob@jump", "vm.delete")]
    assert pick(target="web1", since="1d") == [("bob@jump", "vm.delete")]
    assert pick(until="1h") == [("alice@jump", "vm.create"), ("bob@jump", "vm.delete")]
    assert pick(limit=1) == [("alice@jump", "network.create")]
    with pytest.raises(VirtdeckError) as e:
        audit_read.read(path, since="yesterday")
    assert e.value.exit_code == ExitCode.USAGE and "--since" in str(e.value)
    # through the CLI: JSON, YAML and a table within 80 columns
    monkeypatch.setenv("VIRTDECK_AUDIT_LOG", str(path))
    assert main(["audit", "--operator", "alice", "--json"]) == 0
    assert [r["verb"] for r in json.loads(capsys.readouterr().out)] == ["vm.create", "network.create"]
    assert main(["-o", "yaml", "audit", "--verb", "network"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)[0]["target"] == "network demo/web"
    assert main(["audit"]) == 0
    cap = capsys.readouterr()
    assert len(cap.out.splitlines()) == 4 and all(len(line) <= 80 for line in cap.out.splitlines())
    assert "1 unreadable line(s)" in cap.err
    assert main(["audit", "--since", "soon"]) == ExitCode.USAGE


@pytest.mark.parametrize("verb", ALL, ids=lambda v: v.name)
def test_every_argument_has_a_help_line(verb):
    import argparse
    for a in verb.args:
        assert a.opts.get("help"), (verb.name, a.flags)  # SUPPRESS (a hidden alias) counts
        if a.opts["help"] is not argparse.SUPPRESS:
            assert a.opts["help"].strip()


from hypothesis import given, settings, strategies as st  # noqa: E402

_TEXT = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=70)


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.fixed_dictionaries({"a": _TEXT, "b": _TEXT, "n": st.integers(0, 10**6), "c": _TEXT}),
                     min_size=1, max_size=6),
       width=st.integers(40, 160))
def test_any_table_fits_its_width(rows, width):
    """Whatever the cells, every line of a table is within the width (fixed columns here are
    narrow enough to fit), and the fixed column is never cut."""
    cols = (output.col("NAME", "a"), output.col("HOST", "b"), output.col("RAM MiB", "n", fixed=True, right=True),
            output.col("IPS", "c"))
    lines = output.render_table(cols, rows, width)
    assert all(len(line) <= width for line in lines), (width, lines)
    assert len(lines) == len(rows) + 1
    for row, line in zip(rows, lines[1:]):
        assert str(row["n"]) in line


def test_top_help_fits_80_columns():
    p = subprocess.run([VIRTDECK, "--help"], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, COLUMNS="80"))
    assert p.returncode == 0 and all(len(line) <= 80 for line in p.stdout.splitlines()), p.stdout
