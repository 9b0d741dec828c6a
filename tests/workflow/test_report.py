"""The HTML report of the shared demo run: the Snakemake target, an incremental rebuild after a new seeds
variant, and the pages in a real headless Chromium (skipped only when chromium/chromedriver are missing:
`make install-browser`). Screenshots are kept under the copy's results/demo/report/ and, when
FMWSSS_REPORT_SHOTS names a folder, copied there."""
from __future__ import annotations

import contextlib
import io
import math
import os
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from fmwsss.cli.main import main
from tests.report.webdriver import Browser

from .conftest import Workdir

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SEGMENTER_CONFIG = "    segmenter:\n      arch: tiny\n"
GAMMA_EDIT = "    seeds_fine:\n      gamma: 0.5\n" + SEGMENTER_CONFIG


def _report_cli(wd: Workdir) -> tuple[int, int]:
    """`fmwsss report demo` (in this process: torch is imported once); (thumbnails drawn, reused) from its log."""
    out = io.StringIO()
    with contextlib.chdir(wd.path), contextlib.redirect_stdout(out):
        assert main(["report", "demo"]) == 0
    found = re.search(r"(\d+) thumbnails drawn, (\d+) reused", out.getvalue())
    assert found and "report: results/demo/report/index.html" in out.getvalue(), out.getvalue()
    return int(found.group(1)), int(found.group(2))


def _thumbs(wd: Workdir) -> set[str]:
    root = wd.path / "results/demo/.report-cache"
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def report_run(demo_attempt, tmp_path_factory) -> dict:
    """A copy of the demo run: report via Snakemake, then a γ change, seeds rerun, report via the CLI."""
    wd = demo_attempt.get().copy(tmp_path_factory.mktemp("report") / "wd")
    before = os.readlink(wd.path / "results/demo/seeds")
    out = wd.snakemake("--cores", "1", "results/demo/report").stderr
    ran = sorted(set(re.findall(r"^(?:local)?rule (\w+):", out, re.M)))
    cold = _thumbs(wd)
    wd.snakemake("--report", "report.zip", "results/demo/report")  # the README's command, on the finished run
    packed_html = (wd.path / "results/demo/report/index.html").read_bytes()
    text = wd.config_text()
    assert SEGMENTER_CONFIG in text
    wd.write_config(text.replace(SEGMENTER_CONFIG, GAMMA_EDIT, 1))
    wd.snakemake("--cores", "2", "results/demo/seeds")
    drawn, reused = _report_cli(wd)
    return {"wd": wd, "ran": ran, "cold": cold, "drawn": drawn, "reused": reused, "packed_html": packed_html,
            "seeds_keys": (before.split("/")[-1], os.readlink(wd.path / "results/demo/seeds").split("/")[-1])}


def test_snakemake_target_runs_only_the_report(report_run):
    assert report_run["ran"] == ["report"]  # no compute stage moved
    assert (report_run["wd"].path / "results/demo/report/index.html").is_file()


def test_rebuild_after_new_seeds_variant_draws_only_the_new_seeds(report_run):
    wd = report_run["wd"]
    old_key, new_key = report_run["seeds_keys"]
    assert old_key != new_key
    ids = [p.stem for p in (wd.path / "results/demo/seeds").glob("*.png")]
    new = _thumbs(wd) - report_run["cold"]
    assert report_run["drawn"] == len(ids) == len(new)
    assert new == {f"seeds_fine/{new_key}/{i}.png" for i in ids}
    assert report_run["reused"] > 0


def test_snakemake_report_zip_holds_the_html_report_and_the_metrics(report_run):
    """README: `snakemake --report report.zip results/demo/report` packs the metrics and the HTML report."""
    wd = report_run["wd"]
    with zipfile.ZipFile(wd.path / "report.zip") as packed:
        files = {name: packed.read(name) for name in packed.namelist()}
    html = [data for name, data in files.items() if name.endswith("/index.html") and "/data/raw/" in name]
    assert html == [report_run["packed_html"]]
    metrics = {data for name, data in files.items() if name.endswith("/metrics.json")}
    stored = {p.read_bytes() for p in (wd.path / "results/demo/store").glob("*/*/metrics.json")}
    assert metrics and metrics <= stored


@pytest.fixture(scope="module")
def browser():
    found = Browser.find()
    if found is None:
        pytest.skip("chromium and chromedriver not installed (Debian: make install-browser)")
    with Browser(*found) as b:
        yield b


def _check_page(browser: Browser, url: str) -> dict:
    browser.get(url)
    state = browser.run(
        "const imgs = [...document.images];"
        "return {n: imgs.length, broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src),"
        " width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight};")
    errors = [e for e in browser.console() if e["level"] == "SEVERE"]
    assert errors == [], errors
    assert state["broken"] == [], state["broken"][:5]
    return state


def _shoot(browser: Browser, wd: Workdir, name: str, page: dict) -> None:
    path = wd.path / "results/demo/report" / name
    browser.screenshot(path, min(page["width"] + 40, 3000), min(page["height"] + 200, 8000))  # + window frame
    shots = os.environ.get("FMWSSS_REPORT_SHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(shots) / name)


def test_report_pages_in_headless_chromium(report_run, browser):
    wd = report_run["wd"]
    report = wd.path / "results/demo/report"
    index = _check_page(browser, (report / "index.html").as_uri())
    assert index["n"] > 0
    assert browser.run("return document.getElementById('test-models-banner') !== null")
    stages = browser.run("return [...document.querySelectorAll('#variants-table tr[data-stage]')]"
                         ".map(r => r.dataset.stage)")
    assert stages.count("seeds_fine") == 2 and stages.count("sam_masks") == 1
    _shoot(browser, wd, "screenshot-summary.png", index)

    browser.resize(1400, 1000)  # a normal screen: the gallery's rows fit without scrolling sideways
    gallery = _check_page(browser, (report / "gallery.html").as_uri() + "?sort=worst")
    fit = browser.run("return {table: document.getElementById('gallery').getBoundingClientRect().right,"
                      " page: document.documentElement.scrollWidth, view: document.documentElement.clientWidth};")
    assert fit["table"] <= fit["view"] <= 1400 and fit["page"] <= fit["view"], fit
    rows = browser.run("return [...document.querySelectorAll('#gallery tbody tr')]"
                       ".map(r => r.querySelector('td.miou').textContent)")
    ids = list((wd.path / "results/demo/seeds").glob("*.png"))
    assert len(rows) == len(ids) and gallery["n"] >= 4 * len(ids)
    values = [math.inf if v == "–" else float(v) for v in rows]
    assert values == sorted(values) and values[0] < math.inf  # worst first, unscored last
    _shoot(browser, wd, "screenshot-gallery.png", gallery)

    cls, name = browser.run("const G = window.FMWSSS_GALLERY; const c = G.rows[0].tags[0]; return [c, G.classes[c]];")
    _check_page(browser, (report / "gallery.html").as_uri() + f"?cls={cls}")
    tags = browser.run("return [...document.querySelectorAll('#gallery tbody tr')].map(r => r.children[1].textContent)")
    assert 0 < len(tags) <= len(ids) and all(name in t.split(", ") for t in tags)
