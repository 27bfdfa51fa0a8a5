"""Collapsed stacks → shares per function and package, and their flame graph (no py-spy here:
synthetic text in py-spy 0.4's raw format)."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET

import pytest

from redline.analysis.profile_stacks import (
    IDLE_FRAME,
    package_of,
    parse_collapsed,
    sampled_pids,
    split_frame,
    summarise,
)
from redline.model.profile import FunctionShare, PackageShare, ProfileSummary
from redline.report.flamegraph import flamegraph_svg

SITE = "/x/.venv/lib/python3.11/site-packages"
STDLIB = "/usr/lib/python3.11"
SVG = "{http://www.w3.org/2000/svg}"

# Two uWSGI workers under their master; a cmdline with ";" in it (bash -c 'a; b') as well.
RAW = f"""\
process 10:"uwsgi --ini k.ini";process 11:"uwsgi --ini k.ini";<module> (/usr/bin/keystone-wsgi:1);issue (/x/.venv/lib/python3.11/site-packages/keystone/token/provider.py:80);hashpw (/x/.venv/lib/python3.11/site-packages/bcrypt/__init__.py:79) 60
process 10:"uwsgi --ini k.ini";process 12:"uwsgi --ini k.ini";<module> (/usr/bin/keystone-wsgi:1);issue (/x/.venv/lib/python3.11/site-packages/keystone/token/provider.py:80);hashpw (/x/.venv/lib/python3.11/site-packages/bcrypt/__init__.py:79) 20
process 10:"uwsgi --ini k.ini";process 12:"uwsgi --ini k.ini";<module> (/usr/bin/keystone-wsgi:1);get_roles (/x/.venv/lib/python3.11/site-packages/keystone/assignment/core.py:12);execute ({SITE}/sqlalchemy/engine/base.py:1400) 10
process 7:"bash -c a; b";process 13:"python3 w.py";<module> (/srv/w.py:1);loads ({STDLIB}/json/__init__.py:299);decode ({STDLIB}/json/decoder.py:332) 10
not a sample line
"""


def test_parse_strips_process_frames_and_sums_equal_stacks_of_several_workers():
    stacks = parse_collapsed(RAW)
    issue = ("<module> (/usr/bin/keystone-wsgi:1)", f"issue ({SITE}/keystone/token/provider.py:80)",
             f"hashpw ({SITE}/bcrypt/__init__.py:79)")  # fmt: skip
    assert stacks[issue] == 80  # worker 11 and worker 12
    assert len(stacks) == 3 and sum(stacks.values()) == 100
    assert not any(f.startswith("process ") for s in stacks for f in s)
    assert sampled_pids(RAW) == (7, 10, 11, 12, 13)


def test_split_frame():
    assert split_frame(f"Process.cpu_times ({SITE}/psutil/__init__.py:1118)") == (
        "Process.cpu_times",
        f"{SITE}/psutil/__init__.py",
    )
    assert split_frame("<lambda> (<string>:1)") == ("<lambda>", "<string>")
    assert split_frame(IDLE_FRAME) == (IDLE_FRAME, "")


@pytest.mark.parametrize(
    ("file", "package"),
    [
        (f"{SITE}/keystone/assignment/core.py", "keystone.assignment"),
        (f"{SITE}/keystone/token/providers/fernet/core.py", "keystone.token"),
        (f"{SITE}/keystone/__init__.py", "keystone"),
        (f"{SITE}/keystone/exception.py", "keystone.exception"),
        (f"{SITE}/nova/conductor/manager.py", "nova.conductor"),
        (f"{SITE}/oslo_db/sqlalchemy/engines.py", "oslo_db.sqlalchemy"),
        (f"{SITE}/sqlalchemy/orm/query.py", "sqlalchemy"),
        (f"{SITE}/bcrypt/__init__.py", "bcrypt"),
        (f"{SITE}/six.py", "six"),
        (f"{SITE}/_cffi_backend.cpython-311-x86_64-linux-gnu.so", "_cffi_backend"),
        ("/usr/lib/python3/dist-packages/routes/mapper.py", "routes"),
        ("/opt/stack/keystone/keystone/identity/core.py", "keystone.identity"),  # a devstack checkout
        ("/work/main/src/redline/identity/api.py", "redline.identity"),
        (f"{SITE}/redline/load/worker.py", "redline.load"),
        (f"{STDLIB}/json/decoder.py", "python (stdlib)"),
        ("/root/.pyenv/versions/3.11.7/lib/python3.11/threading.py", "python (stdlib)"),
        ("/usr/lib/python3.11/lib-dynload/_json.cpython-311-x86_64-linux-gnu.so", "python (stdlib)"),
        ("<frozen importlib._bootstrap>", "python"),
        ("<string>", "python"),
        ("", "python"),
        ("/usr/bin/keystone-wsgi-public", "python"),
        # py-spy without --full-filenames shortens paths to the package part
        ("json/decoder.py", "python (stdlib)"),
        ("psutil/_common.py", "psutil"),
    ],
)
def test_package_of(file, package):
    assert package_of(file) == package


def test_self_and_total_shares():
    s = summarise(parse_collapsed(RAW), (10, 13), 100, 2.0, "probes/00-10/profile.txt.gz", None, cpu_s=0.12)
    assert s.samples == 100 and s.rate_hz == 100 and s.cpu_s == 0.12 and s.idle_share is None
    # Self shares: every sample has one leaf, so they sum to 1 over all functions and packages.
    assert [(f.function, f.self_share) for f in s.top_self] == [("hashpw", 0.8), ("decode", 0.1), ("execute", 0.1)]
    assert sum(p.self_share for p in s.packages) == pytest.approx(1.0)
    # A function is a name in a file: the two <module>s are two rows.
    total = {(f.function, f.file.rsplit("/", 1)[-1]): f.total_share for f in s.top_total}
    assert total == {("<module>", "keystone-wsgi"): 0.9, ("issue", "provider.py"): 0.8,
                     ("hashpw", "__init__.py"): 0.8, ("<module>", "w.py"): 0.1, ("get_roles", "core.py"): 0.1,
                     ("execute", "base.py"): 0.1, ("loads", "__init__.py"): 0.1, ("decode", "decoder.py"): 0.1}  # fmt: skip
    pkgs = {p.package: (p.self_share, p.total_share) for p in s.packages}
    assert pkgs["bcrypt"] == (0.8, 0.8)
    assert pkgs["keystone.token"] == (0.0, 0.8)
    assert pkgs["keystone.assignment"] == (0.0, 0.1)
    assert pkgs["sqlalchemy"] == (0.1, 0.1)
    assert pkgs["python (stdlib)"] == (0.1, 0.1)  # loads and decode: one stack, counted once
    assert pkgs["python"] == (0.0, 1.0)
    assert s.top_package == "bcrypt"
    assert s.headline() == "bcrypt 80 % self, python (stdlib) 10 %, sqlalchemy 10 %"
    assert s.top_self[0] == FunctionShare("hashpw", f"{SITE}/bcrypt/__init__.py", "bcrypt", 0.8, 0.8)


def test_recursion_is_counted_once_in_total():
    rec = "rec (/a/site-packages/pkg/m.py:1)"
    stacks = {("main (/srv/app.py:1)", rec, rec, rec, "leaf (/a/site-packages/pkg/m.py:9)"): 3,
              ("main (/srv/app.py:1)", rec): 1}  # fmt: skip
    s = summarise(stacks, (1,), 100, 1.0, "p", None)
    by = {f.function: f for f in s.top_total}
    assert by["rec"].total_share == 1.0 and by["rec"].self_share == 0.25
    assert by["leaf"].total_share == 0.75
    assert all(f.total_share <= 1 for f in s.top_total)
    assert {p.package: p.total_share for p in s.packages}["pkg"] == 1.0


def test_top_limits_the_tables_and_ties_are_stable():
    stacks = {(f"f{i} (/a/site-packages/p{i}/m.py:1)",): 1 for i in range(30)}
    s1 = summarise(stacks, (), 100, 1.0, "p", None, top=5)
    s2 = summarise(dict(reversed(list(stacks.items()))), (), 100, 1.0, "p", None, top=5)
    assert len(s1.top_self) == len(s1.top_total) == len(s1.packages) == 5
    assert s1 == s2


def test_idle_samples_are_recognised_only_when_marked():
    stacks = {("a (/srv/x.py:1)",): 3, ("a (/srv/x.py:1)", IDLE_FRAME): 1}
    s = summarise(stacks, (), 100, 1.0, "p", None)
    assert s.samples == 3 and s.idle_share == 0.25
    assert s.top_self[0].self_share == 1.0  # shares are of the samples that were not idle


def test_an_error_gives_empty_tables_and_round_trips():
    s = summarise(parse_collapsed(RAW), (10,), 100, 2.0, "", None, error="py-spy needs root")
    assert s.samples == 0 and s.top_self == () and s.packages == () and s.top_package is None
    assert s.headline() == "no profile: py-spy needs root"
    assert ProfileSummary.from_json(s.to_json()) == s
    empty = summarise({}, (), 100, 1.0, "p", None)
    assert empty.headline() == "no samples" and empty.top_package is None


def test_summary_json_round_trip():
    s = summarise(parse_collapsed(RAW), (10, 13), 100, 2.0, "probes/00-10/profile.txt.gz", "probes/00-10/profile.svg")
    d = s.to_json()
    assert d["top_self"][0] == {"function": "hashpw", "file": f"{SITE}/bcrypt/__init__.py", "package": "bcrypt",
                                "self_share": 0.8, "total_share": 0.8}  # fmt: skip
    assert ProfileSummary.from_json(d) == s


def test_top_package_skips_the_interpreter_and_the_stdlib():
    s = ProfileSummary((1,), 100, 1.0, 10, None, "p", None, (), (),
                       (PackageShare("python (stdlib)", 0.6, 0.7), PackageShare("python", 0.3, 1.0),
                        PackageShare("bcrypt", 0.1, 0.1)))  # fmt: skip
    assert s.top_package == "bcrypt"
    assert s.headline(2) == "python (stdlib) 60 % self, python 30 %"


# -- the flame graph --


def _frames(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == "f"]


def test_flamegraph_has_one_rect_per_frame_with_a_title():
    stacks = parse_collapsed(RAW)
    svg = flamegraph_svg(stacks, "probe 3 <200/s>")
    frames = _frames(svg)
    # all; <module> ×2 (two roots); issue, get_roles, loads; hashpw, execute, decode
    assert len(frames) == 1 + 2 + 3 + 3
    assert all(len(g.findall(f"{SVG}rect")) == 1 for g in frames)
    titles = [g.find(f"{SVG}title").text for g in frames]
    assert titles[0].startswith("all\n100 samples, 100.00 %")
    hashpw = next(t for t in titles if t.startswith("hashpw"))
    assert "80 samples, 80.00 %" in hashpw and "package bcrypt" in hashpw
    assert "probe 3 &lt;200/s&gt;" in svg  # escaped
    assert "<script" not in svg and "href" not in svg  # self-contained


def test_flamegraph_widths_follow_samples_and_text_fits():
    stacks = {("a (/srv/x.py:1)", "b_with_a_very_long_name_indeed_that_cannot_fit (/srv/x.py:5)"): 1,
              ("a (/srv/x.py:1)", "c (/srv/x.py:9)"): 99}  # fmt: skip
    frames = _frames(flamegraph_svg(stacks, "t", width=400))
    rects = {g.find(f"{SVG}title").text.split("\n")[0]: g for g in frames}
    b = rects["b_with_a_very_long_name_indeed_that_cannot_fit (/srv/x.py:5)"]
    c = rects["c (/srv/x.py:9)"]
    wb, wc = (float(g.find(f"{SVG}rect").get("width")) for g in (b, c))
    assert wc / wb == pytest.approx(99, rel=0.2)
    assert b.find(f"{SVG}text") is None  # 3.8 px: no room for a label
    label = c.find(f"{SVG}text").text
    assert label == "c"


def test_flamegraph_leaves_out_narrow_frames_and_stays_small():
    rnd = random.Random(1)
    pkgs = ["keystone/assignment", "keystone/token", "sqlalchemy/orm", "oslo_db/api", "bcrypt", "routes", "webob"]
    stacks: dict[tuple[str, ...], int] = {}
    for _ in range(6000):  # a deep framework: 60–90 frames, many distinct leaves
        depth = rnd.randint(60, 90)
        stack = tuple(f"fn{rnd.randint(0, 3 if d < 40 else 40)}_{d} ({SITE}/{rnd.choice(pkgs)}/m{d}.py:{d})"
                      for d in range(depth))  # fmt: skip
        stacks[stack] = stacks.get(stack, 0) + rnd.randint(1, 20)
    total = sum(stacks.values())
    svg = flamegraph_svg(stacks, "big")
    assert len(svg.encode()) < 300_000
    frames = _frames(svg)
    samples = [int(g.find(f"{SVG}title").text.split("\n")[1].split()[0].replace(",", "")) for g in frames]
    assert min(samples) >= total * 0.001


def test_flamegraph_of_nothing():
    svg = flamegraph_svg({}, "empty")
    assert _frames(svg) == [] and "no samples" in svg
    ET.fromstring(svg)
