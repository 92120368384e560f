"""Security-group services: groups are OVN port groups with ACLs (backends/ovn/).

Rules are edited as text lines (``ingress tcp 22 from 10.0.0.0/8``, ``egress any``,
``ingress any from self``; see :class:`backends.ovn.security_groups.SgRule`). The default group of a
tenant (``default``) allows all egress plus ingress from its own members, and drops every other
unsolicited ingress; replies always pass (allow-related). Same contract as the other services:
validate first, one OVN transaction, each verb in the verb frame (:func:`.verb.run`: read-only
guard, one audit record "sg.create", "sg.rules", "sg.delete", "sg.port" on
``security group TENANT/NAME``). Errors: ReadOnlyError, ValidationError, NotFound, HostError.
"""

from __future__ import annotations

from typing import Iterable

from ...backends.ovn import names as ovn_names, rows as ovn_rows, security_groups as ovn_sg
from ...backends.ovn.security_groups import SecurityGroupInfo, SgRule
from ..errors import AlreadyExists, ValidationError
from . import verb
from .network import nb_api
from .network_fields import check_name


def _target(tenant: str, name: str) -> str:
    return f"security group {tenant}/{name}"


def parse_rules(lines: Iterable[str]) -> list[SgRule]:
    """Parse rule lines (blank lines and '#' comments skipped); ValidationError on field
    ``rules`` names the line number and says what is allowed."""
    rules = []
    for i, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            rules.append(SgRule.parse(line))
        except ValueError as exc:
            raise ValidationError("rules", f"line {i}: {exc}") from None
    return rules


def list_security_groups(session, tenant: str | None = None) -> list[SecurityGroupInfo]:
    """Every virtdeck security group (of ``tenant`` if given), read from NB."""
    return ovn_sg.list_security_groups(nb_api(session), tenant)


def create_security_group(session, tenant: str, name: str, rules: Iterable[str] | None = None) -> SecurityGroupInfo:
    """Create a group with ``rules`` (text lines; None = the default rules)."""
    def body(run: verb.VerbRun) -> SecurityGroupInfo:
        check_name(tenant, "tenant")
        check_name(name, "name")
        parsed = ovn_sg.DEFAULT_RULES if rules is None else parse_rules(rules)
        api = nb_api(session)
        if any(s.name == name for s in ovn_sg.list_security_groups(api, tenant)):
            raise AlreadyExists("name", f"tenant {tenant} already has a security group called {name}")
        return ovn_sg.create_security_group(api, tenant, name, parsed)
    return verb.run("sg.create", _target(tenant, name), body)


def set_rules(session, tenant: str, name: str, rules: Iterable[str]) -> SecurityGroupInfo:
    """Replace the group's rules (the editor saves the whole list; the default group is created
    first if it does not exist yet)."""
    lines = list(rules)

    def body(run: verb.VerbRun) -> SecurityGroupInfo:
        run.note(rules=lines)
        parsed = parse_rules(lines)
        api = nb_api(session)
        if name == ovn_names.DEFAULT_SG:
            ovn_sg.create_security_group(api, tenant, name)
        return ovn_sg.set_security_group_rules(api, tenant, name, parsed)
    return verb.run("sg.rules", _target(tenant, name), body)


def add_rule(session, tenant: str, name: str, rule: str) -> SecurityGroupInfo:
    """Append one rule (text form) to the group."""
    api = nb_api(session)
    current = [r.text() for r in _current(api, tenant, name)]
    return set_rules(session, tenant, name, current + [rule])


def delete_rule(session, tenant: str, name: str, rule: str) -> SecurityGroupInfo:
    """Remove the rule whose text form equals ``rule`` (after normalising)."""
    api = nb_api(session)
    try:
        target = SgRule.parse(rule).text()
    except ValueError as exc:
        raise ValidationError("rule", str(exc)) from None
    current = [r.text() for r in _current(api, tenant, name)]
    if target not in current:
        raise ValidationError("rule", f"group {name} has no rule {target!r} (rules: {'; '.join(current) or 'none'})")
    current.remove(target)
    return set_rules(session, tenant, name, current)


def _current(api, tenant, name):
    try:
        return ovn_sg.find_security_group(api, tenant, name).rules
    except ovn_rows.NotFound:
        if name == ovn_names.DEFAULT_SG:
            return ovn_sg.DEFAULT_RULES
        raise


def delete_security_group(session, tenant: str, name: str) -> SecurityGroupInfo:
    """Delete a group (member ports stay, unprotected by it)."""
    def body(run: verb.VerbRun) -> SecurityGroupInfo:
        return ovn_sg.delete_security_group(nb_api(session), tenant, name)
    return verb.run("sg.delete", _target(tenant, name), body)


def add_port(session, tenant: str, name: str, lsp_name: str) -> None:
    """Add VM port ``lsp_name`` to group ``name`` (``default`` is created on first use)."""
    def body(run: verb.VerbRun) -> None:
        run.note(port=lsp_name)
        api = nb_api(session)
        if name == ovn_names.DEFAULT_SG:
            ovn_sg.add_port_to_default_sg(api, tenant, lsp_name)
        else:
            ovn_sg.add_port_to_sg(api, tenant, name, lsp_name)
    return verb.run("sg.port", _target(tenant, name), body)
