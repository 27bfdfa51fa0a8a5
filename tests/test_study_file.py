"""Study files: each mistake is one line naming the file, the line and the key, found
before any lab starts; a good file makes the matrix × variants × repeats cells, checked
against the real commands' options."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run_redline
from redline.analysis.study_effects import Observation, factor_effects
from redline.cli.study import _command_of
from redline.study.spec_file import StudyFileError, argv_of, parse_study

HEAD = "study: t\ntarget: identity\njob: {command: run, options: {rate: 5, duration: 2}}\n"


def _parse(text: str):
    return parse_study(text, "s.yaml", _command_of)


@pytest.mark.parametrize(
    "body, where, reason",
    [
        ("matrix: {wrkers: [1, 2]}\n", "s.yaml:4: matrix.wrkers:", "has no option --wrkers; it has: cpus, hash-rounds"),
        ("matrix: {}\n", "s.yaml:4: matrix:", "is empty"),
        ("matrix:\n", "s.yaml:4: matrix:", "is empty"),
        ("matrix: {workers: []}\n", "s.yaml:4: matrix.workers:", "must be a non-empty list"),
        ("matrix: {workers: [one, 2]}\n", "s.yaml:4: matrix.workers:", "valid integer"),
        ("matrix: {tls: [0, 1]}\n", "s.yaml:4: matrix.tls:", "must be true or false"),
        ("matrix: {workers: [1, 1]}\n", "s.yaml:4: matrix.workers:", "lists a value twice"),
        ("matrix: {state-dir: [/a, /b]}\n", "s.yaml:4: matrix.state-dir:", "set by the study"),
        ("matrix: {workers: [1]}\nrepeats: 0\n", "s.yaml:5: repeats:", "1..50, not '0'"),
        ("matrix: {workers: [1]}\nrepeat: 2\n", "s.yaml:5: repeat:", "unknown key; known: description, job, lab"),
        ("lab: {workers: 1}\nmatrix: {workers: [1, 2]}\n", "s.yaml:5: matrix.workers:", "also under lab"),
        ("variants: [{name: a, lab: {processes: 2}}]\n", "s.yaml:4: variants[1].lab.processes:", "no option --processes"),
        ("variants: [{name: a}, {name: a}]\n", "s.yaml:4: variants[2].name:", "names two variants"),
        ("variants: [{lab: {workers: 2}}]\n", "s.yaml:4: variants[1].name:", "missing"),
        ("variants: [{name: k, target: keystone, lab: {server: uwsgi, processes: x}}]\n",
         "s.yaml:4: variants[1].lab.processes:", "valid integer"),
        ("variants: [{name: a, options: {os-password: hunter2}}]\n", "s.yaml:4: variants[1].options.os-password:",
         "set it in the environment"),
        ("variants: [{name: a, options: {os-auth-url: http://x}}]\n", "s.yaml:4: variants[1].options.os-auth-url:",
         "set by the study"),
        ("variants: [{name: a, options: {rate: fast}}]\n", "s.yaml:4: variants[1].options.rate:", "valid number"),
        ("description: x\n", "s.yaml:1: matrix/variants:", "a study needs cells"),
        ("matrix: [workers]\n", "s.yaml:4: matrix:", "must be a mapping of names to values, not a list"),
        ("matrix: {workers: [1}\n", "s.yaml:4: (yaml):", ""),
    ],
)  # fmt: skip
def test_bad_study_file_is_one_line_naming_file_line_and_key(body, where, reason):
    with pytest.raises(StudyFileError) as exc:
        _parse(HEAD + body)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(where) and reason in msg, msg


@pytest.mark.parametrize(
    "text, where",
    [
        ("target: identity\nmatrix: {workers: [1]}\n", "s.yaml:1: job:"),
        ("study: t\ntarget: nova\njob: {command: run}\nmatrix: {workers: [1]}\n", "s.yaml:2: target:"),
        ("target: identity\njob: {command: boot}\nmatrix: {workers: [1]}\n", "s.yaml:2: job.command:"),
        ("target: identity\njob: {command: run, options: {results: /x}}\nmatrix: {workers: [1]}\n",
         "s.yaml:2: job.options.results:"),
        ("target: url\njob: {command: run}\nmatrix: {workers: [1]}\n", "s.yaml:3: matrix:"),
        ("", "s.yaml:1: (file):"),
    ],
)  # fmt: skip
def test_bad_top_level(text, where):
    with pytest.raises(StudyFileError) as exc:
        _parse(text)
    assert str(exc.value).startswith(where), str(exc.value)


def test_cells_are_matrix_then_variants_times_repeats():
    spec = _parse(
        "study: grid\ntarget: keystone\nlab: {hash-rounds: 4, cpus: '1'}\n"
        "matrix:\n  database: [mariadb, postgresql]\n  server: [apache, nginx-uwsgi]\n  db-tmpfs: [false, true]\n"
        "variants:\n  - {name: memcached, lab: {cache: memcached}}\n"
        "  - {name: reference identity, target: identity, lab: {workers: 2}}\n"
        "job: {command: capacity, options: {scenario: keystone.issue, protocol: quick, resolution: 40%}}\n"
        "repeats: 2\n"
    )
    assert len(spec.cells) == (8 + 2) * 2
    assert [c.id for c in spec.cells[:3]] == ["01-r1", "01-r2", "02-r1"]
    first = spec.cells[0]
    assert first.factors == {"database": "mariadb", "server": "apache", "db-tmpfs": False}
    assert first.label == "database=mariadb server=apache db-tmpfs=false"
    assert first.lab == {"hash-rounds": 4, "cpus": "1", "database": "mariadb", "server": "apache", "db-tmpfs": False}
    mem, ref = spec.cells[16], spec.cells[18]
    assert mem.variant == "memcached" and mem.lab["cache"] == "memcached" and mem.lab["hash-rounds"] == 4
    assert ref.target == "identity" and ref.lab == {"workers": 2}  # another target's options are its own
    lab = _command_of(("lab", "keystone", "up"))
    assert argv_of(spec.cells[2].lab, lab) == [
        "--hash-rounds", "4", "--cpus", "1", "--database", "mariadb", "--server", "apache", "--db-tmpfs",
    ]  # fmt: skip
    assert "--db-tmpfs" not in argv_of(first.lab, lab)  # false: the option left out
    assert argv_of(first.options, _command_of(("capacity",)))[-2:] == ["--resolution", "40%"]
    assert spec.levels == {
        "database": ("mariadb", "postgresql"), "server": ("apache", "nginx-uwsgi"), "db-tmpfs": (False, True),
    }  # fmt: skip
    # A changed file is another study: a folder made for one does not resume the other.
    other = _parse(HEAD + "matrix: {workers: [1, 2]}\n")
    assert other.digest() != spec.digest() and other.digest() == _parse(HEAD + "matrix: {workers: [1, 2]}\n").digest()


def test_negated_flag_is_given_as_its_no_form():
    spec = parse_study(
        "target: hypervisor\njob: {command: storm, options: {count: 8}}\nmatrix: {cgroups: [true, false]}\n",
        "h.yaml",
        _command_of,
    )
    lab = _command_of(("lab", "hypervisor", "up"))
    assert [argv_of(c.lab, lab) for c in spec.cells] == [["--cgroups"], ["--no-cgroups"]]


def test_cli_bad_file_exits_2_with_one_line(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(HEAD + "matrix: {wrkers: [1]}\n")
    line = assert_one_line_error(run_redline("study", str(f), "--results", str(tmp_path / "r")))
    assert f"{f}:4: matrix.wrkers:" in line
    assert not (tmp_path / "r").exists()  # nothing started, nothing written
    missing = run_redline("study", str(tmp_path / "nope.yaml"))
    assert "cannot read study file" in assert_one_line_error(missing) and missing.returncode == 2


def _obs(factors_values):
    return [Observation(f, v) for f, v in factors_values]


def test_effects_recover_a_known_ratio_with_an_interval():
    # N = 100 × (1.1 if tmpfs) × (0.8 if apache), with ±2 % noise in the pairs
    noise = iter([1.0, 1.02, 0.98, 1.01, 0.99, 1.0, 1.02, 0.98])
    obs = []
    for db in ("mariadb", "postgresql"):
        for server in ("nginx", "apache"):
            for tmpfs in (False, True):
                n = 100 * (1.1 if tmpfs else 1) * (0.8 if server == "apache" else 1) * next(noise)
                obs.append(Observation({"database": db, "server": server, "tmpfs": tmpfs}, n))
    levels = {"database": ("mariadb", "postgresql"), "server": ("nginx", "apache"), "tmpfs": (False, True)}
    found = {e.factor: e for e in factor_effects(levels, obs, "N /s")}
    t = found["tmpfs"]
    assert t.pairs == 4 and t.low is not None and t.high is not None
    assert t.low < 1.1 < t.high and abs(t.ratio - 1.1) < 0.03
    assert found["server"].low < 0.8 < found["server"].high
    assert "tmpfs=true vs false: N /s +" in t.text() and "(4 pairs)" in t.text()


def test_effects_one_pair_uses_repeats_else_says_no_interval():
    levels = {"cache": ("none", "memcached")}
    alone = factor_effects(levels, _obs([({"cache": "none"}, 100.0), ({"cache": "memcached"}, 150.0)]), "N /s")
    assert alone[0].ratio == pytest.approx(1.5) and alone[0].low is None
    assert "no interval" in alone[0].text()
    reps = _obs(
        [({"cache": "none"}, v) for v in (98, 100, 102)] + [({"cache": "memcached"}, v) for v in (148, 150, 153)]
    )
    (e,) = factor_effects(levels, reps, "N /s")
    assert e.low is not None and e.high is not None and e.low < e.ratio < e.high and e.low > 1.4 and e.high < 1.6
    missing = factor_effects(levels, _obs([({"cache": "none"}, 100.0)]), "N /s")
    assert math.isnan(missing[0].ratio) and "no pair" in missing[0].text()


def test_examples_parse(tmp_path):
    root = Path(__file__).resolve().parent.parent / "examples" / "study"
    files = sorted(root.glob("*.yaml"))
    assert files, root
    for f in files:
        spec = parse_study(f.read_text(), str(f), _command_of)
        assert spec.cells, f
