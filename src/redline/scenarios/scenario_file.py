"""Scenario files: a request mix or a multi-step iteration in YAML, so that nobody edits code
to add a request. The schema is in docs/scenarios.md; in short:

    version: 1
    name: issue-then-read            # optional (default: the file's stem)
    description: free text           # optional
    requests:                        # a weighted mix …
      - {service: compute, path: /servers/detail, microversion: "2.79", weight: 4}
    steps:                           # … or one iteration (exactly one of the two)
      - {service: identity, method: POST, path: /v3/auth/tokens, auth: false,
         body: "${auth_body}", capture: {X-Subject-Token: subject}}
      - {service: identity, path: /v3/auth/tokens, headers: {X-Subject-Token: "${subject}"}}

Every problem is reported as one line naming the file, the line and the key
(`mix.yaml:7: steps[2].headers: …`), read off the YAML node marks (yaml.compose keeps
them; a plain load would not), before anything is sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import yaml

from redline.errors import UserError
from redline.scenarios.openstack import BUILTINS, OpenStackRequest, Plan

_TOP = {"version", "name", "description", "requests", "steps"}
_REQUEST = {"name", "service", "path", "method", "microversion", "headers", "body", "auth"}
_MIX_ONLY = {"weight"}
_STEP_ONLY = {"capture"}
_MAX_ITEMS = 100


class ScenarioFileError(UserError):
    """One line: FILE:LINE: key: reason."""


@dataclass(frozen=True)
class _Ctx:
    file: str

    def fail(self, node: yaml.Node | None, key: str, reason: str) -> ScenarioFileError:
        line = node.start_mark.line + 1 if node is not None else 1
        return ScenarioFileError(f"{self.file}:{line}: {key}: {reason}")


def load_scenario_file(path: Path) -> Plan:
    """The plan a scenario file describes, or a ScenarioFileError naming file, line and key."""
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read scenario file {shown!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"{shown}:1: (file): not UTF-8 text") from None
    return parse_scenario(text, shown, default_name=path.stem)


def parse_scenario(text: str, file: str, default_name: str = "scenario") -> Plan:
    ctx = _Ctx(file)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise ScenarioFileError(f"{file}:{line}: (yaml): {exc.problem or exc.context or 'not valid YAML'}") from None
    except yaml.YAMLError as exc:
        raise ScenarioFileError(f"{file}:1: (yaml): {str(exc).splitlines()[0]}") from None
    if root is None:
        raise ScenarioFileError(f"{file}:1: (file): empty; it needs version: 1 and requests: or steps:")
    top = _mapping(ctx, root, "(top level)", _TOP)
    version = top.get("version")
    if version is None:
        raise ctx.fail(root, "version", "missing; write version: 1")
    if _scalar(ctx, version[1], "version") != "1":
        raise ctx.fail(version[1], "version", f"must be 1, not {version[1].value!r}")
    name = _string(ctx, top["name"][1], "name") if "name" in top else default_name
    description = _string(ctx, top["description"][1], "description") if "description" in top else None
    if ("requests" in top) == ("steps" in top):
        where = top["steps"][0] if "steps" in top else root
        raise ctx.fail(where, "requests/steps", "give exactly one: requests (a mix) or steps (one iteration)")
    kind = "requests" if "requests" in top else "steps"
    items_node = top[kind][1]
    if isinstance(items_node, yaml.ScalarNode) and items_node.tag == "tag:yaml.org,2002:null":
        raise ctx.fail(items_node, kind, "is empty; it needs at least one request")
    if not isinstance(items_node, yaml.SequenceNode):
        raise ctx.fail(items_node, kind, f"must be a list of requests, not {_kind(items_node)}")
    if not items_node.value:
        raise ctx.fail(items_node, kind, "is empty; it needs at least one request")
    if len(items_node.value) > _MAX_ITEMS:
        raise ctx.fail(items_node, kind, f"has {len(items_node.value)} entries; at most {_MAX_ITEMS}")
    source: dict[str, Any] = {"file": file}
    if description:
        source["description"] = description
    captured: set[str] = set()
    if kind == "requests":
        reqs = []
        for i, node in enumerate(items_node.value, start=1):
            r, weight = _request(ctx, node, f"requests[{i}]", captured, mix=True)
            reqs.append((r, weight))
        return Plan(f"file:{name}", requests=tuple(reqs), source=source)
    steps = []
    for i, node in enumerate(items_node.value, start=1):
        r, _ = _request(ctx, node, f"steps[{i}]", captured, mix=False)
        steps.append(r)
        captured |= {var for _, var in r.capture}
    return Plan(f"file:{name}", steps=tuple(steps), source=source)


def _request(ctx: _Ctx, node: yaml.Node, key: str, captured: set[str], *, mix: bool) -> tuple[OpenStackRequest, int]:
    allowed = _REQUEST | (_MIX_ONLY if mix else _STEP_ONLY)
    m = _mapping(
        ctx, node, key, allowed, other=_STEP_ONLY if mix else _MIX_ONLY, other_kind="steps" if mix else "requests"
    )
    for need in ("service", "path"):
        if need not in m:
            raise ctx.fail(node, f"{key}.{need}", "missing")
    service = _string(ctx, m["service"][1], f"{key}.service")
    if not service.replace("-", "").replace("_", "").isalnum():
        raise ctx.fail(m["service"][1], f"{key}.service", f"not a catalog service type: {service!r}")
    path_node = m["path"][1]
    path = _string(ctx, path_node, f"{key}.path")
    if not path.startswith("/") or any(c in path for c in " \t\r\n"):
        raise ctx.fail(path_node, f"{key}.path", f"must start with / and hold no spaces: {path!r}")
    method = "GET"
    if "method" in m:
        method = _string(ctx, m["method"][1], f"{key}.method").upper()
        if not method.isalpha():
            raise ctx.fail(m["method"][1], f"{key}.method", f"not an HTTP method: {method!r}")
    microversion = None
    if "microversion" in m:
        microversion = _scalar(ctx, m["microversion"][1], f"{key}.microversion")
        if not (microversion == "latest" or all(p.isdigit() for p in microversion.split("."))):
            raise ctx.fail(m["microversion"][1], f"{key}.microversion", f"must look like 2.79, not {microversion!r}")
    headers: list[tuple[str, str]] = []
    if "headers" in m:
        hnode = m["headers"][1]
        for hk, hv in _pairs(ctx, hnode, f"{key}.headers"):
            name = _string(ctx, hk, f"{key}.headers")
            if not name or any(c in name for c in " \t\r\n:"):
                raise ctx.fail(hk, f"{key}.headers", f"not a header name: {name!r}")
            value = _scalar(ctx, hv, f"{key}.headers.{name}")
            if "\r" in value or "\n" in value:
                raise ctx.fail(hv, f"{key}.headers.{name}", "line breaks are not allowed in a header")
            headers.append((name, value))
    body = b""
    if "body" in m:
        bnode = m["body"][1]
        if isinstance(bnode, yaml.ScalarNode):
            body = bnode.value.encode("utf-8")
        else:  # a mapping or a list is sent as JSON
            body = json.dumps(yaml.safe_load(yaml.serialize(bnode)), separators=(",", ":")).encode("utf-8")
    auth = True
    if "auth" in m:
        anode = m["auth"][1]
        if not (isinstance(anode, yaml.ScalarNode) and anode.tag == "tag:yaml.org,2002:bool"):
            raise ctx.fail(anode, f"{key}.auth", f"must be true or false, not {_kind(anode)}")
        auth = anode.value.lower() in ("true", "yes", "on")
    weight = 1
    if "weight" in m:
        wnode = m["weight"][1]
        if not (isinstance(wnode, yaml.ScalarNode) and wnode.tag == "tag:yaml.org,2002:int"):
            raise ctx.fail(wnode, f"{key}.weight", f"must be a whole number, not {_kind(wnode)}")
        weight = int(wnode.value)
        if not 1 <= weight <= 1000:
            raise ctx.fail(wnode, f"{key}.weight", f"must be 1..1000, not {weight}")
    capture: list[tuple[str, str]] = []
    if "capture" in m:
        cnode = m["capture"][1]
        pairs = _pairs(ctx, cnode, f"{key}.capture")
        if not pairs:
            raise ctx.fail(cnode, f"{key}.capture", "is empty; map a response header to a variable")
        for hk, hv in pairs:
            header = _string(ctx, hk, f"{key}.capture")
            var = _string(ctx, hv, f"{key}.capture.{header}")
            if not var.isidentifier():
                raise ctx.fail(hv, f"{key}.capture.{header}", f"not a variable name: {var!r}")
            if var in BUILTINS:
                raise ctx.fail(hv, f"{key}.capture.{header}", f"{var!r} is a built-in variable; choose another name")
            capture.append((header, var))
    # Every ${variable} must be a built-in or captured by an earlier step.
    texts = [(path_node, f"{key}.path", path)]
    if "headers" in m:
        texts += [(hv, f"{key}.headers.{hk.value}", str(hv.value)) for hk, hv in _pairs(ctx, m["headers"][1], "")]
    if "body" in m:
        texts.append((m["body"][1], f"{key}.body", body.decode("utf-8")))
    known = set(BUILTINS) | captured
    for tnode, tkey, text in texts:
        _check_placeholders(ctx, tnode, tkey, text, known, mix)
    r = OpenStackRequest(
        service=service,
        path=path,
        method=method,
        microversion=microversion,
        headers=tuple(headers),
        body=body,
        name=_string(ctx, m["name"][1], f"{key}.name") if "name" in m else "",
        auth=auth,
        capture=tuple(capture),
    )
    return r, weight


def _check_placeholders(ctx: _Ctx, node: yaml.Node, key: str, text: str, known: set[str], mix: bool) -> None:
    if "$" not in text:
        return
    t = Template(text)
    if not t.is_valid():
        raise ctx.fail(node, key, "a $ that starts no ${variable}; write $$ for a literal $")
    for ident in t.get_identifiers():
        if ident not in known:
            hint = (
                "a mix has no captured variables"
                if mix
                else "no earlier step captures it (capture: {Header: " + ident + "})"
            )
            raise ctx.fail(node, key, f"${{{ident}}} is not a built-in ({', '.join(BUILTINS)}) and {hint}")


def _mapping(
    ctx: _Ctx,
    node: yaml.Node,
    key: str,
    allowed: set[str],
    other: Collection[str] = (),
    other_kind: str = "",
) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise ctx.fail(node, key, f"must be a mapping, not {_kind(node)}")
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    where: Callable[[str], str] = (lambda k: k) if key == "(top level)" else (lambda k: f"{key}.{k}")
    for k, v in node.value:
        if not isinstance(k, yaml.ScalarNode):
            raise ctx.fail(k, key, "keys must be plain words")
        if k.value in out:
            raise ctx.fail(k, where(k.value), "given twice")
        if k.value not in allowed:
            if k.value in other:
                raise ctx.fail(k, where(k.value), f"only in {other_kind} entries")
            raise ctx.fail(k, where(k.value), f"unknown key; known: {', '.join(sorted(allowed))}")
        out[k.value] = (k, v)
    return out


def _pairs(ctx: _Ctx, node: yaml.Node, key: str) -> list[tuple[yaml.ScalarNode, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise ctx.fail(node, key, f"must be a mapping of names to values, not {_kind(node)}")
    out = []
    for k, v in node.value:
        if not isinstance(k, yaml.ScalarNode):
            raise ctx.fail(k, key, "names must be plain text")
        out.append((k, v))
    return out


def _scalar(ctx: _Ctx, node: yaml.Node, key: str) -> str:
    """A scalar as written (2.10 stays "2.10", not the float 2.1)."""
    if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
        raise ctx.fail(node, key, f"must be a value, not {_kind(node)}")
    return str(node.value)


def _string(ctx: _Ctx, node: yaml.Node, key: str) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.tag != "tag:yaml.org,2002:str":
        raise ctx.fail(node, key, f"must be text, not {_kind(node)}")
    return str(node.value)


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    tag = node.tag.rsplit(":", 1)[-1]
    return {"null": "empty", "int": "a number", "float": "a number", "bool": "true/false"}.get(
        tag, f"text {node.value!r}" if tag == "str" else f"{tag} {node.value!r}"
    )
