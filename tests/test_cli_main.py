"""Edges of the `fmwsss` command: what `status` opens, says and exits with, what `gc` keeps, deletes and
refuses, and a closed stdout pipe."""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from fmwsss.cli.main import main
from tests.pipeline.test_store import changed_config_store
from tests.workflow.conftest import ROOT

BIN = Path(sys.executable).parent


def _status(cwd: Path, *args: str) -> tuple[int, str]:
    code, out, _ = _status_streams(cwd, *args)
    return code, out


def _status_streams(cwd: Path, *args: str) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of `fmwsss status ARGS` run in ``cwd``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["status", *args])
    return code, out.getvalue(), err.getvalue()


def _states(out: str) -> dict[str, dict[str, str]]:
    """Dataset -> stage -> state, from `fmwsss status` output (problem and repair lines left out)."""
    found: dict[str, dict[str, str]] = {}
    for line in out.splitlines():
        if not line.startswith(" "):
            current = found.setdefault(line.split(":")[0], {})
        elif not line.startswith("    ") and not line.strip().startswith("repair:"):
            stage, _key, state = line.split(None, 2)
            current[stage] = state
    return found


def _fetched_samples(tmp_path: Path, voc_sample: Path, coco_sample: Path) -> Path:
    """The shipped config with both samples fetched as `make data` does: demo has a val split, coco_demo none."""
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    with contextlib.chdir(tmp_path), contextlib.redirect_stdout(io.StringIO()):
        assert main(["data", "voc-sample", "--source", str(voc_sample), "--dest", "data/voc_sample"]) == 0
        assert main(["data", "coco-sample", "--source", str(coco_sample), "--dest", "data/coco_sample"]) == 0
    return tmp_path


def test_status_fails_only_for_an_unusable_dataset_named_on_the_command_line(tmp_path):
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")  # no data fetched: demo's root is missing
    code, out = _status(tmp_path)
    assert code == 0 and "voc: unavailable: datasets.voc.root is not set" in out, out
    for name in ("voc", "demo"):
        code, out = _status(tmp_path, name)
        assert code == 1 and out.startswith(f"{name}: unavailable: datasets.{name}"), out


def test_status_of_an_unknown_dataset_is_an_error_naming_it(tmp_path, capsys):
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    with contextlib.chdir(tmp_path):
        assert main(["status", "nope"]) == 2
    assert "datasets.nope: no such dataset (known: demo," in capsys.readouterr().err


def test_status_opens_only_the_datasets_named(tmp_path, voc_sample, coco_sample):
    wd = _fetched_samples(tmp_path, voc_sample, coco_sample)
    code, out, err = _status_streams(wd, "coco_demo")
    assert code == 0 and out.startswith("coco_demo: 12 images in 1 shards"), out
    assert (wd / "results/coco_demo/index.sqlite").is_file()
    assert not (wd / "results/demo").exists() and not (wd / "results/demo_pretrained").exists()
    assert "fmwsss status:" not in err  # the dataset asked for is read without an announcement
    code, out, _ = _status_streams(wd, "coco_demo", "demo")
    assert code == 0 and list(_states(out)) == ["coco_demo", "demo"], out


def test_status_of_every_dataset_announces_each_index_before_reading_it(tmp_path, voc_sample, coco_sample):
    wd = _fetched_samples(tmp_path, voc_sample, coco_sample)
    code, out, err = _status_streams(wd)
    assert code == 0, out
    announced = [line for line in err.splitlines() if line.startswith("fmwsss status: ")]
    assert [line.split(":")[1].strip() for line in announced] == ["demo", "demo_pretrained", "coco_demo", "rehearsal"], err
    assert "reading results/demo/index.sqlite (built or refreshed first" in announced[0]
    # the announcement comes before the index build it announces
    assert err.index(announced[0]) < err.index("fmwsss index: demo: opening the dataset"), err
    assert "voc: unavailable: datasets.voc.root is not set" in out  # skipped with its reason, nothing read
    assert "coco: unavailable: datasets.coco.root is not set" in out


def test_status_marks_deeplab_optional_only_without_a_val_split(tmp_path, voc_sample, coco_sample):
    """coco_demo (COCO val2014 sample, no 'val' split) is run to its seeds only: its DeepLab stages are not
    reported as pending forever; demo's are, until its val split has been scored."""
    wd = _fetched_samples(tmp_path, voc_sample, coco_sample)
    code, out, _ = _status_streams(wd, "coco_demo", "demo")
    assert code == 0, out
    states = _states(out)
    coco, demo = states["coco_demo"], states["demo"]
    optional = "not run (optional: no 'val' split)"
    assert coco["deeplab_train"] == coco["deeplab_eval"] == optional, coco
    assert coco["seeds_fine"] == coco["score_seeds_fine"] == "pending", coco
    assert set(demo.values()) == {"pending"}, demo


def test_closed_stdout_ends_like_sigpipe_without_a_traceback():
    """`fmwsss config demo | head -1`: the reader is gone before the write; no BrokenPipeError traceback, and
    the process ends by SIGPIPE as `seq 1 100000 | head -1` does (a shell reports 141)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    proc = subprocess.run(
        [str(BIN / "fmwsss"), "config", "demo", "--config", str(ROOT / "config.yaml")],
        stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120,
    )
    os.close(write_end)
    assert proc.returncode == -signal.SIGPIPE and proc.stderr == "", proc.stderr


def _gc(monkeypatch, results: Path, current: set, *args: str) -> tuple[int, str, str]:
    """`fmwsss gc ARGS` on ``results`` with a plan whose current entries are ``current`` (demo available,
    other_ds unavailable)."""
    plan = SimpleNamespace(datasets={"demo": SimpleNamespace(error=None), "other_ds": SimpleNamespace(error="gone")},
                           reachable=lambda: current)
    monkeypatch.setattr(sys.modules["fmwsss.cli.main"], "_load_plan", lambda config, results: plan)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["gc", "--results", str(results), *args])
    return code, out.getvalue(), err.getvalue()


def test_gc_deletes_only_what_nothing_reaches_and_stale_temps_and_reports_dangling_links(tmp_path, monkeypatch):
    results = tmp_path / "results"
    current = changed_config_store(results)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    kept_entry = results / "demo/store/seeds_fine/e1"
    stale, live = kept_entry / f".manifest.sqlite.tmp-{proc.pid}", kept_entry / f".spec.json.tmp-{os.getpid()}"
    stale.write_bytes(b"")
    live.write_bytes(b"{")
    (results / "other_ds/store/sam_masks/f1").mkdir(parents=True)  # an unavailable dataset's: left alone
    (results / "other_ds/store/sam_masks/f1" / f".x.tmp-{proc.pid}").write_bytes(b"")
    code, out, _ = _gc(monkeypatch, results, current)
    assert code == 0 and "dry run: nothing deleted" in out, out
    listed = [line.split()[-1] for line in out.splitlines() if line.split()[2:3] in (["entry"], ["temp"])]
    store = results / "demo/store"
    assert listed == [str(store / "sam_masks" / key) for key in ("a1", "a4")] + [
        str(store / "score_seeds_fine/c2"), str(stale)], out
    assert f"0 B  setlink {store}/sam_masks/sets/9f0" in out
    assert f"dangling stable name: {results}/demo/deeplab -> store/deeplab_eval/dead (entry gone)" in out
    assert "note: other_ds is unavailable" in out
    code, out, _ = _gc(monkeypatch, results, current, "--yes")
    assert code == 0 and "deleted 5 items" in out, out
    assert not (store / "sam_masks/a4").exists() and not stale.exists() and live.is_file()
    survivors = {p.name for p in [*store.glob("*/*"), *store.glob("*/sets/*"), *(results / "demo").iterdir()]}
    assert {"cc", "e1", "c1", "a2", "a3", "5e7", "seeds", "deeplab"} <= survivors
    assert not {"a1", "a4", "c2", "9f0"} & survivors
    assert (results / "other_ds/store/sam_masks/f1" / f".x.tmp-{proc.pid}").is_file()


def test_gc_refuses_while_snakemake_lock_files_are_left(tmp_path, monkeypatch):
    results = tmp_path / "results"
    current = changed_config_store(results)
    (tmp_path / ".snakemake/locks").mkdir(parents=True)
    (tmp_path / ".snakemake/locks/0.output.lock").write_text("results/demo/seeds\n")
    code, out, err = _gc(monkeypatch, results, current, "--yes")
    assert code == 1 and out == "" and err.startswith("fmwsss: error: "), err
    assert "`snakemake --unlock`" in err and "`fmwsss gc --yes` again" in err
    assert (results / "demo/store/sam_masks/a4").is_dir()


def test_gc_on_the_shipped_config_keeps_the_entry_a_stable_name_names(tmp_path, voc_sample, coco_sample):
    """Issue 20: after a config revert the stable name still names an entry of the other config; gc keeps it."""
    wd = _fetched_samples(tmp_path, voc_sample, coco_sample)
    store = wd / "results/coco_demo/store/sam_masks"
    for key in ("aaaa0000aaaa0000", "bbbb0000bbbb0000"):  # no current key of any config in this folder
        (store / key).mkdir(parents=True)
        (store / key / "spec.json").write_text("{}")
    os.symlink("store/sam_masks/aaaa0000aaaa0000", wd / "results/coco_demo/sam_masks")
    out = io.StringIO()
    with contextlib.chdir(wd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["gc", "--yes"]) == 0
    assert "entry   results/coco_demo/store/sam_masks/bbbb0000bbbb0000" in out.getvalue(), out.getvalue()
    assert "deleted 1 items" in out.getvalue() and (wd / "results/coco_demo/sam_masks/spec.json").is_file()
