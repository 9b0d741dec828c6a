"""One shared end-to-end run of the tiny demo pipeline, reused by every workflow test.

Each Snakemake job imports torch (~1.5 s), so tests never re-run the chain on their own: they read the shared
session run, or copy its working directory (cheap: tiny weights, 24 images) before changing anything.
Every Snakemake call runs through ``tests.processes.run``: its time limit scales with
``FMWSSS_TEST_TIMEOUT_SCALE`` and a timed-out run is killed with its jobs.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


from tests.processes import run
from tests.samples import sample_dir

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass
class Workdir:
    path: Path

    def snakemake(self, *args: str, env: dict | None = None, check: bool = True, timeout: int = 900):
        cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), *args]
        proc = run(cmd, timeout, cwd=self.path, env={**os.environ, **(env or {})})
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def updated(self, *targets: str) -> list[str]:
        """Files a dry run would (re)build, from Snakemake's API."""
        proc = run([sys.executable, str(Path(__file__).with_name("dryrun_oracle.py")), str(ROOT / "Snakefile"),
                    *targets], 300, cwd=self.path)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def copy(self, dest: Path) -> "Workdir":
        shutil.copytree(self.path, dest, symlinks=True, ignore=shutil.ignore_patterns(".snakemake"))
        # keep Snakemake's metadata (rerun triggers compare against it) but not its locks
        shutil.copytree(self.path / ".snakemake", dest / ".snakemake", ignore=shutil.ignore_patterns("locks"))
        return Workdir(dest)

    def config_text(self) -> str:
        return (self.path / "config.yaml").read_text()

    def write_config(self, text: str) -> None:
        (self.path / "config.yaml").write_text(text)


def make_workdir(path: Path) -> Workdir:
    """A fresh working directory: the shipped config and the fetched demo images."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "config.yaml", path / "config.yaml")
    subprocess.run(
        [str(BIN / "fmwsss"), "data", "voc-sample", "--source", str(sample_dir("voc_sample")),
         "--dest", str(path / "data" / "voc_sample")],
        check=True, capture_output=True, text=True,
    )
    return Workdir(path)


def fetch_coco_sample(wd: Workdir) -> None:
    """Copy the 12-image COCO sample into the workdir (dataset coco_demo)."""
    subprocess.run(
        [str(BIN / "fmwsss"), "data", "coco-sample", "--source", str(sample_dir("coco_sample")),
         "--dest", str(wd.path / "data" / "coco_sample")],
        check=True, capture_output=True, text=True,
    )


def run_demo(tmp_path_factory) -> Workdir:
    """The tiny demo pipeline run once to results/demo/seeds and results/demo/deeplab, and, in the same
    Snakemake invocation, the coco preset on the COCO sample to results/coco_demo/seeds."""
    wd = make_workdir(tmp_path_factory.mktemp("demo_run"))
    fetch_coco_sample(wd)
    wd.snakemake("--cores", "2", "results/demo/seeds", "results/demo/deeplab", "results/coco_demo/seeds", timeout=1800)
    return wd
