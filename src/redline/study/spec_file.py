"""Study files: the configurations to measure and the job for each, in YAML.

    study: keystone-table1          # optional (default: the file's stem)
    description: free text          # optional
    target: keystone                # keystone | identity | hypervisor | url
    lab: {hash-rounds: 4, cpus: "1"}                  # options of `redline lab TARGET up`, every cell
    matrix:                                           # a cartesian product of lab options …
      database: [mariadb, postgresql]
      server: [apache, nginx-uwsgi]
    variants:                                         # … and/or named cells
      - {name: reference identity, target: identity, lab: {workers: 2}}
    job:
      command: capacity             # capacity | run | storm | scale
      options: {scenario: keystone.issue, protocol: quick, cpus: "0"}
    repeats: 1

Option keys are the command's long options without the dashes (`db-tmpfs`; `db_tmpfs`
is read the same). They are checked here against the commands themselves (the typer/click
command objects, passed in by the CLI; each value goes through the option's own
conversion): an unknown option or a value of the wrong type is one line naming the file,
the line and the key, before any lab starts. What the study wires
itself (state directories, results folders, --json, the lab's URL) may not be given.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
import yaml

from redline.errors import UserError
from redline.model.codec import to_json
from redline.model.study import COMMANDS, TARGETS, CellPlan
from redline.yaml_nodes import TOP, NodeFile, is_null, kind, sub

_TOP = {"study", "description", "target", "lab", "matrix", "variants", "job", "repeats"}
_VARIANT = {"name", "target", "lab", "options"}
_JOB = {"command", "options"}
MAX_CELLS = 500
MAX_REPEATS = 50
# Set by the study for every cell: a file that gave them would fight the study's wiring.
RESERVED_LAB = {"state-dir", "json", "help"}
RESERVED_JOB = {"results", "json", "help", "state-dir", "driver"}
RESERVED_WITH_LAB = {"os-auth-url", "url"}  # the lab's URL is the cell's
# Secrets would land in study.json's command lines: they come from the environment.
SECRETS = {"os-password", "os-token", "os-application-credential-secret", "header"}

# The typer (click) command behind `redline WORDS…`, e.g. ("lab", "keystone", "up") or
# ("capacity",). Its `params` carry opts, secondary_opts, is_flag, multiple, default and
# process_value, which is all a study needs of them.
CommandOf = Callable[[tuple[str, ...]], Any]


class StudyFileError(UserError):
    """One line: FILE:LINE: key: reason."""


@dataclass(frozen=True)
class StudySpec:
    name: str
    file: str
    description: str | None
    levels: dict[str, tuple[Any, ...]]  # the matrix's factors and their levels, in the file's order
    cells: tuple[CellPlan, ...]

    def digest(self) -> str:
        """Of what the cells are: a study folder resumes only the study it was made for."""
        text = json.dumps([to_json(c) for c in self.cells], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def lab_command(target: str) -> tuple[str, ...] | None:
    return None if target == "url" else ("lab", target, "up")


def load_study_file(path: Path, command_of: CommandOf) -> StudySpec:
    nf = NodeFile(str(path), StudyFileError)
    return parse_study(nf.read(path, "study file"), str(path), command_of, default_name=path.stem)


def parse_study(text: str, file: str, command_of: CommandOf, default_name: str = "study") -> StudySpec:
    nf = NodeFile(file, StudyFileError)
    root = nf.compose(text)
    if root is None or is_null(root):
        raise nf.fail(root, "(file)", "empty; it needs target:, job: and a matrix: or variants:")
    top = nf.mapping(root, TOP, _TOP)
    for need in ("target", "job"):
        if need not in top:
            raise nf.fail(root, need, f"missing; see docs/study.md ({', '.join(sorted(_TOP))})")
    name = nf.string(top["study"][1], "study") if "study" in top else default_name
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}", name):
        raise nf.fail(top["study"][1] if "study" in top else root, "study", "a name of letters, digits, . _ - (≤ 80)")
    description = nf.string(top["description"][1], "description") if "description" in top else None
    target = _target(nf, top["target"][1], "target")
    repeats = 1
    if "repeats" in top:
        node = top["repeats"][1]
        value = nf.value(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_REPEATS:
            shown = repr(node.value) if isinstance(node, yaml.ScalarNode) else kind(node)
            raise nf.fail(node, "repeats", f"must be a whole number 1..{MAX_REPEATS}, not {shown}")
        repeats = value
    job = nf.mapping(top["job"][1], "job", _JOB)
    if "command" not in job:
        raise nf.fail(top["job"][1], "job.command", f"missing; one of {', '.join(COMMANDS)}")
    command = nf.string(job["command"][1], "job.command")
    if command not in COMMANDS:
        raise nf.fail(job["command"][1], "job.command", f"must be one of {', '.join(COMMANDS)}, not {command!r}")
    checker = _Checker(nf, command_of, command)
    job_options = (
        checker.options(job["options"][1], "job.options", (command,), _job_reserved(target)) if "options" in job else {}
    )
    base_lab = checker.lab(target, top["lab"][1], "lab") if "lab" in top else {}

    levels: dict[str, tuple[Any, ...]] = {}
    if "matrix" in top:
        mnode = top["matrix"][1]
        pairs = nf.pairs(mnode, "matrix") if not is_null(mnode) else []
        if not pairs:
            raise nf.fail(
                mnode, "matrix", "is empty; give lab options with lists of values, e.g. database: [sqlite, mariadb]"
            )
        if target == "url":
            raise nf.fail(mnode, "matrix", "target url has no lab to vary: use variants with job options")
        for knode, vnode in pairs:
            key = sub("matrix", knode.value)
            if not isinstance(vnode, yaml.SequenceNode) or not vnode.value:
                raise nf.fail(vnode, key, f"must be a non-empty list of values, not {kind(vnode)}")
            option = _norm(knode.value)
            if option in base_lab:
                raise nf.fail(knode, key, "is also under lab: give it in one place")
            values = tuple(checker.lab(target, _single(knode, item), "matrix")[option] for item in vnode.value)
            if len(set(map(repr, values))) != len(values):
                raise nf.fail(vnode, key, "lists a value twice")
            levels[option] = values
    variants = _variants(nf, checker, top["variants"][1], target, base_lab) if "variants" in top else []
    if not levels and not variants:
        raise nf.fail(root, "matrix/variants", "give a matrix, variants or both: a study needs cells")

    plans: list[tuple[str, str, dict[str, Any], dict[str, Any], dict[str, Any], str | None]] = []
    for combo in itertools.product(*levels.values()) if levels else ():
        factors = dict(zip(levels, combo, strict=True))
        label = " ".join(f"{k}={_shown(v)}" for k, v in factors.items())
        plans.append((label, target, factors, base_lab | factors, job_options, None))
    for v in variants:
        plans.append((v.name, v.target, {}, v.lab, job_options | v.options, v.name))
    total = len(plans) * repeats
    if total > MAX_CELLS:
        raise nf.fail(root, "matrix", f"makes {total} cells (with repeats); at most {MAX_CELLS}")
    cells = []
    for i, (label, tgt, factors, lab, options, variant) in enumerate(plans, start=1):
        for r in range(1, repeats + 1):
            cells.append(CellPlan(
                id=f"{i:02d}-r{r}", label=label, target=tgt, factors=factors, lab=lab,
                command=command, options=options, repeat=r, variant=variant,
            ))  # fmt: skip
    return StudySpec(name, file, description, levels, tuple(cells))


@dataclass(frozen=True)
class _Variant:
    name: str
    target: str
    lab: dict[str, Any]
    options: dict[str, Any]


def _variants(
    nf: NodeFile, checker: _Checker, node: yaml.Node, target: str, base_lab: dict[str, Any]
) -> list[_Variant]:
    if not isinstance(node, yaml.SequenceNode) or not node.value:
        raise nf.fail(node, "variants", f"must be a non-empty list of {{name: …, lab: {{…}}}}, not {kind(node)}")
    out: list[_Variant] = []
    for i, item in enumerate(node.value, start=1):
        key = sub("variants", i)
        m = nf.mapping(item, key, _VARIANT)
        if "name" not in m:
            raise nf.fail(item, f"{key}.name", "missing: every variant has a name")
        name = nf.scalar(m["name"][1], f"{key}.name")
        if any(v.name == name for v in out):
            raise nf.fail(m["name"][1], f"{key}.name", f"{name!r} names two variants")
        vtarget = _target(nf, m["target"][1], f"{key}.target") if "target" in m else target
        # A variant of the study's target starts from the study's lab options; another
        # target's options are its own.
        lab = dict(base_lab) if vtarget == target else {}
        if "lab" in m:
            if vtarget == "url":
                raise nf.fail(m["lab"][0], f"{key}.lab", "target url has no lab")
            lab |= checker.lab(vtarget, m["lab"][1], f"{key}.lab")
        options = {}
        if "options" in m:
            options = checker.options(m["options"][1], f"{key}.options", (checker.command,), _job_reserved(vtarget))
        out.append(_Variant(name, vtarget, lab, options))
    return out


def _target(nf: NodeFile, node: yaml.Node, key: str) -> str:
    value = nf.string(node, key)
    if value not in TARGETS:
        raise nf.fail(node, key, f"must be one of {', '.join(TARGETS)}, not {value!r}")
    return value


def _job_reserved(target: str) -> set[str]:
    return RESERVED_JOB | (set() if target == "url" else RESERVED_WITH_LAB)


def _norm(key: str) -> str:
    return key.replace("_", "-")


def _shown(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


def _single(knode: yaml.ScalarNode, value: yaml.Node) -> yaml.MappingNode:
    """`key: value` as a mapping node, so one matrix level is checked like a lab option."""
    return yaml.MappingNode("tag:yaml.org,2002:map", [(knode, value)], knode.start_mark, value.end_mark)


class _Checker:
    """Options checked against the click parameters of the command they are for."""

    def __init__(self, nf: NodeFile, command_of: CommandOf, command: str) -> None:
        self.nf, self.command_of, self.command = nf, command_of, command

    def lab(self, target: str, node: yaml.Node, key: str) -> dict[str, Any]:
        words = lab_command(target)
        if words is None:
            raise self.nf.fail(node, key, "target url has no lab options")
        return self.options(node, key, words, RESERVED_LAB)

    def options(self, node: yaml.Node, key: str, words: tuple[str, ...], reserved: set[str]) -> dict[str, Any]:
        command = self.command_of(words)
        params = options_of(command)
        out: dict[str, Any] = {}
        for knode, vnode in self.nf.pairs(node, key) if not is_null(node) else []:
            name = _norm(knode.value)
            where = sub(key, knode.value)
            if name in SECRETS:
                raise self.nf.fail(
                    knode,
                    where,
                    "may hold a secret, and study.json keeps command lines: set it in the environment (OS_PASSWORD, OS_TOKEN, …)",
                )
            if name in reserved:
                raise self.nf.fail(knode, where, f"is set by the study for every cell (`redline {' '.join(words)}`)")
            param = params.get(name)
            if param is None:
                near = ", ".join(sorted(k for k in params if k not in reserved | SECRETS)) or "none"
                raise self.nf.fail(knode, where, f"`redline {' '.join(words)}` has no option --{name}; it has: {near}")
            if name in out:
                raise self.nf.fail(knode, where, "given twice")
            out[name] = self._value(command, param, vnode, where)
        return out

    def _value(self, command: Any, param: Any, node: yaml.Node, where: str) -> Any:
        if param.is_flag:
            value = self.nf.value(node) if isinstance(node, yaml.ScalarNode) else None
            if not isinstance(value, bool):
                raise self.nf.fail(node, where, f"must be true or false, not {kind(node)}")
            if value is False and not param.secondary_opts and param.default is not False:
                raise self.nf.fail(node, where, "cannot be turned off: leave it out")
            return value
        items = node.value if isinstance(node, yaml.SequenceNode) and param.multiple else [node]
        values = []
        for item in items:
            if not isinstance(item, yaml.ScalarNode) or is_null(item):
                raise self.nf.fail(
                    item, where, f"must be a value{' or a list' if param.multiple else ''}, not {kind(item)}"
                )
            value = self.nf.value(item)
            text = _shown(value) if isinstance(value, bool) else str(item.value)
            try:
                param.process_value(typer.Context(command), [text] if param.multiple else text)
            except typer.BadParameter as exc:
                raise self.nf.fail(item, where, exc.format_message()) from None
            values.append(value)
        return values if param.multiple else values[0]


def options_of(command: Any) -> dict[str, Any]:
    """The command's long options by name without dashes (`db-tmpfs`)."""
    out: dict[str, Any] = {}
    for p in command.params:
        if getattr(p, "param_type_name", "") == "option":
            for opt in p.opts:
                if opt.startswith("--"):
                    out[opt[2:]] = p
    return out


def argv_of(options: Mapping[str, Any], command: Any) -> list[str]:
    """Command-line words for options a study file gave (checked by parse_study)."""
    params = options_of(command)
    out: list[str] = []
    for name, value in options.items():
        param = params[name]
        if param.is_flag:
            if value:
                out.append(f"--{name}")
            elif param.secondary_opts:
                out.append(param.secondary_opts[0])
            continue
        for v in value if param.multiple else [value]:
            out += [f"--{name}", _shown(v) if isinstance(v, bool) else str(v)]
    return out
