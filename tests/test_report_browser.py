"""The HTML report in a real browser: headless Chromium (Debian `chromium`), no network.

Chromium's own log (`--enable-logging=stderr`) carries every console message and
uncaught exception of the page as `CONSOLE` lines; `--dump-dom` gives the DOM after the
scripts ran, where plotly leaves one `svg.main-svg` per chart with a path per trace.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import lxml.html
import pytest

from redline.report import write_reports
from test_report import figures, session_folders

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian package `chromium` is not installed (scripts/apt-packages.txt; ./dev installs it as root)",
)
DOCS_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "img" / "report-capacity.png"


def chromium(page: Path, profile: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Headless Chromium on a local file, with everything that would reach the network off."""
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--disable-extensions", "--hide-scrollbars", "--mute-audio",
        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
        # Virtual time: run the page's scripts to quiescence instead of sleeping.
        "--virtual-time-budget=4000",
    ]  # fmt: skip
    return subprocess.run(
        [CHROMIUM, *flags, *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture
def report(tmp_path_factory, tmp_path) -> Path:
    cap, _ = session_folders(tmp_path_factory)
    folder = shutil.copytree(cap, tmp_path / "cap")
    write_reports(folder)
    return folder / "report.html"


def test_report_renders_in_chromium_without_console_errors(report, tmp_path):
    proc = chromium(report, tmp_path / "profile", "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    logged = console_lines(proc.stderr)
    assert not logged, "the page wrote to the console:\n" + "\n".join(logged)

    dom = lxml.html.fromstring(proc.stdout)
    expected = figures(report.read_text())
    assert len(expected) >= 7
    for fid, fig in expected.items():
        (div,) = dom.xpath(f'//div[@id="{fid}"]')
        assert div.xpath('.//svg[contains(@class, "main-svg")]'), f"{fid}: plotly drew nothing"
        # One drawn path per plotted line or marker: the chart holds data, not just axes.
        drawn = [
            p for p in div.xpath('.//g[contains(@class, "scatterlayer")]//path')
            if len(p.get("d") or "") > 10 and re.search(r"\b(js-line|point)\b", p.get("class") or "")
        ]  # fmt: skip
        assert len(drawn) >= 2, f"{fid}: {len(drawn)} drawn paths for {len(fig['data'])} traces"


def test_report_screenshot(report, tmp_path):
    shot = tmp_path / "report.png"
    proc = chromium(report, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2400")
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    assert shot.stat().st_size > 100_000  # a page of charts, not a blank or an error page
    assert not console_lines(proc.stderr)
    # REDLINE_DOCS_SCREENSHOT=1 refreshes the picture in docs/report.md from this run.
    if os.environ.get("REDLINE_DOCS_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)
