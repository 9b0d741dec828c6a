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


MINI_IDS = 2  # the first VOC sample ids, as a custom dataset
MINI_DATASET = """\
  mini:
    type: custom
    root: data/mini
    preset: demo
    options: {images: images, tags: tags.csv, classes: classes.txt}
    overrides:
      data: {shard_size: SHARD_SIZE}
      prompts_cls: {iterations: 3, warmup_iters: 1, batch_size: 2}
      prompts_seg: {iterations: 3, warmup_iters: 1, batch_size: 2}
"""
VOC_CLASSES = ("aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse motorbike person "
               "pottedplant sheep sofa train tvmonitor").split()


def mini_config(wd: Workdir, shard_size: int) -> None:
    """The shipped config with dataset ``mini`` at ``shard_size`` (replacing an earlier ``mini`` entry)."""
    text = (ROOT / "config.yaml").read_text()
    entry = MINI_DATASET.replace("SHARD_SIZE", str(shard_size))
    wd.write_config(text.replace("datasets:\n", "datasets:\n" + entry, 1))


def run_mini(tmp_path_factory) -> Workdir:
    """A small custom dataset (2 VOC sample images, 3 prompt iterations) run to its seeds twice: with one image
    a shard, then with both in one (the current layout, also scored and aliased), whose entries link every
    image into the first ones (spec.json refs). What the store-integrity tests damage; not the demo's seeds."""
    wd = Workdir(tmp_path_factory.mktemp("mini_run"))
    voc = sample_dir("voc_sample")
    labels = json.loads((voc / "labels.json").read_text())
    ids = sorted(labels)[:MINI_IDS]
    root = wd.path / "data" / "mini"
    (root / "images").mkdir(parents=True)
    for image_id in ids:
        shutil.copy(voc / "JPEGImages" / f"{image_id}.jpg", root / "images" / f"{image_id}.jpg")
    (root / "classes.txt").write_text("\n".join(VOC_CLASSES) + "\n")
    (root / "tags.csv").write_text("id,tags\n" + "".join(
        f"{i},{';'.join(VOC_CLASSES[t - 1] for t in labels[i])}\n" for i in ids))
    mini_config(wd, 1)
    # the seeds entry only (no scores, no stable names)
    wd.snakemake("--cores", "2", "results/mini/seeds", "--until", "seeds_fine_finalize", timeout=1200)
    mini_config(wd, MINI_IDS)
    wd.snakemake("--cores", "2", "results/mini/seeds", timeout=1200)
    return wd
