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
from pathlib import Path
from string import Template
from typing import Any

import yaml

from redline.errors import UserError
from redline.scenarios.openstack import BUILTINS, OpenStackRequest, Plan
from redline.yaml_nodes import TOP, NodeFile, kind

_TOP = {"version", "name", "description", "requests", "steps"}
_REQUEST = {"name", "service", "path", "method", "microversion", "headers", "body", "auth"}
_MIX_ONLY = {"weight"}
_STEP_ONLY = {"capture"}
_MAX_ITEMS = 100


class ScenarioFileError(UserError):
    """One line: FILE:LINE: key: reason."""


def load_scenario_file(path: Path) -> Plan:
    """The plan a scenario file describes, or a ScenarioFileError naming file, line and key."""
    text = NodeFile(str(path), ScenarioFileError).read(path, "scenario file")
    return parse_scenario(text, str(path), default_name=path.stem)


def parse_scenario(text: str, file: str, default_name: str = "scenario") -> Plan:
    ctx = NodeFile(file, ScenarioFileError)
    root = ctx.compose(text)
    if root is None:
        raise ScenarioFileError(f"{file}:1: (file): empty; it needs version: 1 and requests: or steps:")
    top = ctx.mapping(root, TOP, _TOP)
    version = top.get("version")
    if version is None:
        raise ctx.fail(root, "version", "missing; write version: 1")
    if ctx.scalar(version[1], "version") != "1":
        raise ctx.fail(version[1], "version", f"must be 1, not {version[1].value!r}")
    name = ctx.string(top["name"][1], "name") if "name" in top else default_name
    description = ctx.string(top["description"][1], "description") if "description" in top else None
    if ("requests" in top) == ("steps" in top):
        where = top["steps"][0] if "steps" in top else root
        raise ctx.fail(where, "requests/steps", "give exactly one: requests (a mix) or steps (one iteration)")
    section = "requests" if "requests" in top else "steps"
    items_node = top[section][1]
    if isinstance(items_node, yaml.ScalarNode) and items_node.tag == "tag:yaml.org,2002:null":
        raise ctx.fail(items_node, section, "is empty; it needs at least one request")
    if not isinstance(items_node, yaml.SequenceNode):
        raise ctx.fail(items_node, section, f"must be a list of requests, not {kind(items_node)}")
    if not items_node.value:
        raise ctx.fail(items_node, section, "is empty; it needs at least one request")
    if len(items_node.value) > _MAX_ITEMS:
        raise ctx.fail(items_node, section, f"has {len(items_node.value)} entries; at most {_MAX_ITEMS}")
    source: dict[str, Any] = {"file": file}
    if description:
        source["description"] = description
    captured: set[str] = set()
    if section == "requests":
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


def _request(
    ctx: NodeFile, node: yaml.Node, key: str, captured: set[str], *, mix: bool
) -> tuple[OpenStackRequest, int]:
    allowed = _REQUEST | (_MIX_ONLY if mix else _STEP_ONLY)
    m = ctx.mapping(
        node, key, allowed, other=_STEP_ONLY if mix else _MIX_ONLY, other_kind="steps" if mix else "requests"
    )
    for need in ("service", "path"):
        if need not in m:
            raise ctx.fail(node, f"{key}.{need}", "missing")
    service = ctx.string(m["service"][1], f"{key}.service")
    if not service.replace("-", "").replace("_", "").isalnum():
        raise ctx.fail(m["service"][1], f"{key}.service", f"not a catalog service type: {service!r}")
    path_node = m["path"][1]
    path = ctx.string(path_node, f"{key}.path")
    if not path.startswith("/") or any(c in path for c in " \t\r\n"):
        raise ctx.fail(path_node, f"{key}.path", f"must start with / and hold no spaces: {path!r}")
    method = "GET"
    if "method" in m:
        method = ctx.string(m["method"][1], f"{key}.method").upper()
        if not method.isalpha():
            raise ctx.fail(m["method"][1], f"{key}.method", f"not an HTTP method: {method!r}")
    microversion = None
    if "microversion" in m:
        microversion = ctx.scalar(m["microversion"][1], f"{key}.microversion")
        if not (microversion == "latest" or all(p.isdigit() for p in microversion.split("."))):
            raise ctx.fail(m["microversion"][1], f"{key}.microversion", f"must look like 2.79, not {microversion!r}")
    headers: list[tuple[str, str]] = []
    if "headers" in m:
        hnode = m["headers"][1]
        for hk, hv in ctx.pairs(hnode, f"{key}.headers"):
            name = ctx.string(hk, f"{key}.headers")
            if not name or any(c in name for c in " \t\r\n:"):
                raise ctx.fail(hk, f"{key}.headers", f"not a header name: {name!r}")
            value = ctx.scalar(hv, f"{key}.headers.{name}")
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
            raise ctx.fail(anode, f"{key}.auth", f"must be true or false, not {kind(anode)}")
        auth = anode.value.lower() in ("true", "yes", "on")
    weight = 1
    if "weight" in m:
        wnode = m["weight"][1]
        if not (isinstance(wnode, yaml.ScalarNode) and wnode.tag == "tag:yaml.org,2002:int"):
            raise ctx.fail(wnode, f"{key}.weight", f"must be a whole number, not {kind(wnode)}")
        weight = int(wnode.value)
        if not 1 <= weight <= 1000:
            raise ctx.fail(wnode, f"{key}.weight", f"must be 1..1000, not {weight}")
    capture: list[tuple[str, str]] = []
    if "capture" in m:
        cnode = m["capture"][1]
        pairs = ctx.pairs(cnode, f"{key}.capture")
        if not pairs:
            raise ctx.fail(cnode, f"{key}.capture", "is empty; map a response header to a variable")
        for hk, hv in pairs:
            header = ctx.string(hk, f"{key}.capture")
            var = ctx.string(hv, f"{key}.capture.{header}")
            if not var.isidentifier():
                raise ctx.fail(hv, f"{key}.capture.{header}", f"not a variable name: {var!r}")
            if var in BUILTINS:
                raise ctx.fail(hv, f"{key}.capture.{header}", f"{var!r} is a built-in variable; choose another name")
            capture.append((header, var))
    # Every ${variable} must be a built-in or captured by an earlier step.
    texts = [(path_node, f"{key}.path", path)]
    if "headers" in m:
        texts += [(hv, f"{key}.headers.{hk.value}", str(hv.value)) for hk, hv in ctx.pairs(m["headers"][1], "")]
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
        name=ctx.string(m["name"][1], f"{key}.name") if "name" in m else "",
        auth=auth,
        capture=tuple(capture),
    )
    return r, weight


def _check_placeholders(ctx: NodeFile, node: yaml.Node, key: str, text: str, known: set[str], mix: bool) -> None:
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
