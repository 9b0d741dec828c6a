"""The workflow end to end with tiny models: outputs, invalidation, aliases, gc, kill and resume."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from fmwsss.pipeline.plan import Plan
from fmwsss.pipeline.stages import SCORES, STAGES
from fmwsss.sam.shards import SamShardReader

from .conftest import BIN, ROOT, Workdir, make_workdir
from tests.processes import scaled

pytestmark = pytest.mark.e2e

ALL_RULES = [
    "weights_tiny", "sam_masks", "sam_masks_finalize", "prompts_cls_train", "cams_coarse_dump",
    "cams_coarse_dump_finalize", "seeds_coarse", "seeds_coarse_finalize", "prompts_seg_train", "cams_fine_dump",
    "cams_fine_dump_finalize", "seeds_fine", "seeds_fine_finalize", "deeplab_train", "deeplab_eval", "score", "alias",
]


def with_scores(stages: set[str]) -> set[str]:
    """The store folders a change of ``stages`` writes: theirs and, for a scored stage, its score entry's."""
    return stages | {SCORES[s].name for s in stages if s in SCORES}


def _sam_key(wd: Workdir) -> str:
    return os.readlink(wd.path / "results/demo/sam_masks").split("/")[-1]


def _read_all(wd: Workdir, key: str) -> dict[str, object]:
    out = {}
    for shard in sorted((wd.path / f"results/demo/store/sam_masks/{key}").glob("shard-*.h5")):
        reader = SamShardReader(shard)
        for image_id in reader.ids():
            out[image_id] = reader.read(image_id)
    return out


def test_dry_run_lists_every_stage(tmp_path):
    wd = make_workdir(tmp_path / "wd")
    out = wd.snakemake("-n", "--cores", "all", "results/demo/seeds", "results/demo/deeplab").stdout
    for rule in ALL_RULES:
        assert re.search(rf"^{rule}\s+\d+$", out, re.M), (rule, out[-2000:])


def test_lint_is_clean():
    proc = subprocess.run([str(BIN / "snakemake"), "--lint"], cwd=ROOT, capture_output=True, text=True)
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr, proc.stdout


def test_sam_stage_outputs(demo_run):
    link = demo_run.path / "results/demo/sam_masks"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    key = _sam_key(demo_run)
    spec = yaml.safe_load((link / "spec.json").read_text())
    assert spec["key"] == key and spec["stage"] == "sam_masks" and spec["settings"]["sam"]["points_per_side"] == 8
    assert sorted(p.name for p in link.glob("shard-*.h5")) == ["shard-000.h5"]  # the demo's 24 images: 1 shard
    masks = _read_all(demo_run, key)
    assert len(masks) == 24
    counts = {i: m.masks.shape[0] for i, m in masks.items()}
    assert min(counts.values()) >= 20, counts
    for m in masks.values():
        assert m.masks.dtype == bool and set(np.unique(m.level)) <= {0, 1, 2}
        assert np.array_equal(m.area, m.masks.reshape(len(m.masks), -1).sum(1))


def test_nothing_reruns_and_scripts_touch_schedules_nothing(demo_run):
    assert demo_run.updated("results/demo/seeds", "results/demo/deeplab") == []
    now = time.time()
    for script in (ROOT / "workflow/scripts").glob("*.py"):
        os.utime(script, (now, now))
    assert demo_run.updated("results/demo/seeds", "results/demo/deeplab") == []


def test_reorder_and_explicit_defaults_schedule_nothing(demo_run, tmp_path):
    wd = demo_run.copy(tmp_path / "wd")
    raw = yaml.safe_load(wd.config_text())
    raw["presets"]["demo"]["sam"].update(pred_iou_thresh=0.86, stability_score_offset=1.0, rsw_thresh=0.3)

    def reorder(obj):
        return {k: reorder(obj[k]) for k in reversed(list(obj))} if isinstance(obj, dict) else obj

    wd.write_config(yaml.safe_dump(reorder(raw), sort_keys=False))
    assert wd.updated("results/demo/seeds") == []


def test_changed_sam_setting_reruns_sam_only_and_revert_repoints_alias(demo_run, tmp_path):
    wd = demo_run.copy(tmp_path / "wd")
    old_key = _sam_key(wd)
    original = wd.config_text()
    wd.write_config(original.replace("      points_per_side: 8\n", "      points_per_side: 6\n"))
    updated = wd.updated("results/demo/sam_masks")
    new_dirs = {p.split("/")[4] for p in updated if p.startswith("results/demo/store/")}
    assert len(new_dirs) == 1 and old_key not in new_dirs
    (new_key,) = new_dirs
    assert set(updated) == {
        f"results/demo/store/sam_masks/{new_key}/{n}" for n in ("shard-000.h5", "spec.json")
    } | {"results/demo/sam_masks"}
    downstream = {p.split("/")[3] for p in wd.updated("results/demo/seeds") if p.startswith("results/demo/store/")}
    assert downstream == with_scores({"sam_masks", "seeds_coarse", "prompts_seg_train", "cams_fine_dump", "seeds_fine"})

    old_files = {p: p.stat().st_mtime_ns for p in (wd.path / f"results/demo/store/sam_masks/{old_key}").iterdir()}
    wd.snakemake("--cores", "2", "results/demo/sam_masks")
    assert _sam_key(wd) == new_key
    assert (wd.path / f"results/demo/store/sam_masks/{old_key}/spec.json").is_file()

    # the stable names seeds and deeplab still name entries made from the old SAM entry: gc keeps it (issue 20)
    gc = subprocess.run([str(BIN / "fmwsss"), "gc"], cwd=wd.path, capture_output=True, text=True)
    assert gc.returncode == 0 and old_key not in gc.stdout and new_key not in gc.stdout, gc.stdout + gc.stderr

    wd.write_config(original)
    assert wd.updated("results/demo/sam_masks") == ["results/demo/sam_masks"]
    wd.snakemake("--cores", "2", "results/demo/sam_masks")
    assert _sam_key(wd) == old_key
    assert {p: p.stat().st_mtime_ns for p in old_files} == old_files
    assert (wd.path / f"results/demo/store/sam_masks/{new_key}/spec.json").is_file()


def test_key_dependencies_follow_the_stage_graph(voc_sample, tmp_path):
    raw = yaml.safe_load((ROOT / "config.yaml").read_text())
    raw["datasets"] = {"demo": raw["datasets"]["demo"]}
    raw["datasets"]["demo"]["root"] = str(voc_sample)

    def keys(mutate):
        cfg = yaml.safe_load(yaml.safe_dump(raw))
        mutate(cfg["presets"]["demo"])
        return Plan(cfg, results=str(tmp_path)).datasets["demo"].keys

    base = keys(lambda p: None)
    changed = {
        "sam": {"sam_masks", "seeds_coarse", "prompts_seg_train", "cams_fine_dump", "seeds_fine", "deeplab_train", "deeplab_eval"},
        "seeds_coarse": {"seeds_coarse", "prompts_seg_train", "cams_fine_dump", "seeds_fine", "deeplab_train", "deeplab_eval"},
        "seeds_fine": {"seeds_fine", "deeplab_train", "deeplab_eval"},
        "cams_fine": {"cams_fine_dump", "seeds_fine", "deeplab_train", "deeplab_eval"},
    }
    edits = {
        "sam": lambda p: p["sam"].update(pred_iou_thresh=0.5),
        "seeds_coarse": lambda p: p.update(seeds_coarse={"gamma": 0.5}),
        "seeds_fine": lambda p: p.update(seeds_fine={"gamma": 0.5}),
        "cams_fine": lambda p: p.update(cams_fine={"caa": {"box_thresh": 0.6}}),
        "sam_implementation": lambda p: p["sam"].update(implementation="reference"),
        "sam_autocast": lambda p: p["sam"].update(autocast="bf16"),
    }
    changed["sam_implementation"] = changed["sam_autocast"] = changed["sam"]
    for section, edit in edits.items():
        new = keys(edit)
        assert {s for s in STAGES if new[s] != base[s]} == changed[section], section

    # eval is read only by the CAM score entries: no compute key moves, neither do the seed scores.
    cfg = yaml.safe_load(yaml.safe_dump(raw))
    cfg["presets"]["demo"]["eval"] = {"cam_bg_power": 2.0}
    plan = Plan(raw, results=str(tmp_path))
    ref, new = plan.datasets["demo"], Plan(cfg, results=str(tmp_path)).datasets["demo"]
    assert new.keys == base == ref.keys
    assert {s for s in SCORES if new.score_keys[s] != ref.score_keys[s]} == {"cams_coarse_dump", "cams_fine_dump"}
    # gc keeps the current score entries like any current entry
    assert {("demo", SCORES[s].name, k) for s, k in ref.score_keys.items()} <= plan.reachable()

    # Speed knobs never move a key.
    runtime = yaml.safe_load(yaml.safe_dump(raw))
    runtime["runtime"].update(sam_memory_gb=6.0, sam_points_per_batch=16, sam_encoder_batch=1, sam_postprocess_chunk=8)
    assert Plan(runtime, results=str(tmp_path)).datasets["demo"].keys == base


def _wait_for(pattern: str, folder: Path, timeout: float) -> Path:
    deadline = time.time() + scaled(timeout)
    while time.time() < deadline:
        for log in folder.rglob("*.log"):
            if pattern in log.read_text(errors="replace"):
                return log
        time.sleep(0.5)
    raise AssertionError(f"{pattern!r} never appeared in {folder}")


def _run_until_stalled(wd: Workdir, target: str, stage: str, timeout: float) -> Path:
    """Run ``target`` with the test hook stalling ``stage`` after 3 images, then SIGKILL the whole run."""
    proc = subprocess.Popen(
        [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "--cores", "2", target],
        cwd=wd.path, env={**os.environ, "FMWSSS_TEST_STALL": f"{stage}:3"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        return _wait_for("stalled after 3", wd.path / "results/demo/logs" / stage, timeout=timeout)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
def test_kill_mid_stage_and_resume_with_readme_commands(demo_run, tmp_path):
    wd = make_workdir(tmp_path / "wd")
    stalled_log = _run_until_stalled(wd, "results/demo/sam_masks", "sam_masks", timeout=600)
    key = stalled_log.parent.name
    shard = stalled_log.stem
    assert not (wd.path / f"results/demo/store/sam_masks/{key}/{shard}.h5").exists()

    readme = (ROOT / "README.md").read_text()
    recovery = ["snakemake --unlock --cores 1", "snakemake --cores all --rerun-incomplete results/demo/seeds"]
    for command in recovery:
        assert command in readme
    wd.snakemake("--unlock", "--cores", "1")
    wd.snakemake("--cores", "all", "--rerun-incomplete", "results/demo/sam_masks")  # the target that was running

    lines = [ln for ln in stalled_log.read_text().splitlines() if "sam_masks: image" in ln]
    assert lines and "image 4/24" in lines[0], lines[:2]
    assert len(lines) == 21  # images 4..24, one line each
    resumed, reference = _read_all(wd, key), _read_all(demo_run, key)
    assert resumed.keys() == reference.keys()
    for image_id, ref in reference.items():
        got = resumed[image_id]
        assert np.array_equal(got.masks, ref.masks) and np.array_equal(got.level, ref.level), image_id
    assert not list((wd.path / "results/demo/store/sam_masks").rglob("*.tmp-*"))


def test_unset_root_is_an_error_only_for_its_targets(tmp_path):
    wd = make_workdir(tmp_path / "wd")
    bad = wd.snakemake("-n", "--cores", "1", "results/voc/sam_masks", check=False)
    assert bad.returncode != 0 and "datasets.voc.root is not set" in bad.stdout + bad.stderr
    assert wd.snakemake("-n", "--cores", "1", "results/demo/sam_masks").returncode == 0


def test_bad_config_stops_at_parse_time_naming_the_key(tmp_path):
    wd = make_workdir(tmp_path / "wd")
    wd.write_config(wd.config_text().replace("      points_per_side: 8\n", "      points_per_side: eight\n"))
    bad = wd.snakemake("-n", "--cores", "1", "results/demo/sam_masks", check=False)
    assert bad.returncode != 0 and "presets.demo.sam.points_per_side" in bad.stdout + bad.stderr


def _stages_scheduled(wd: Workdir) -> set[str]:
    return {p.split("/")[3] for p in wd.updated("results/demo/seeds") if p.startswith("results/demo/store/")}


def _set(wd: Workdir, old: str, new: str) -> None:
    text = wd.config_text()
    assert old in text, old
    wd.write_config(text.replace(old, new))


DEMO_PRESET_END = "    segmenter:\n      arch: tiny\n"


def test_seed_outputs_are_palette_pngs_with_metrics(demo_run):
    from PIL import Image

    from fmwsss.data.palette import voc_palette

    seeds = demo_run.path / "results/demo/seeds"
    pngs = sorted(seeds.glob("*.png"))
    assert len(pngs) == 24
    classes = set()
    for png in pngs:
        img = Image.open(png)
        assert img.mode == "P" and img.getpalette()[: 3 * 21] == voc_palette()[: 3 * 21]
        classes |= set(np.unique(np.asarray(img)).tolist())
    assert len(classes - {0}) >= 5, classes  # not trivial: several foreground classes painted
    multi = sum(len(np.unique(np.asarray(Image.open(p)))) >= 2 for p in pngs)
    assert multi >= len(pngs) / 2, multi  # at least half of the seed maps hold >= 2 labels
    metrics = yaml.safe_load((seeds / "metrics.json").read_text())
    assert metrics["ground_truth"] and "demo: all (24 images" in metrics["split"] and 0 < metrics["miou"] < 1
    assert metrics["test_models"] == ["tiny_clip", "tiny_sam"]  # numbers copied out say what made them
    assert yaml.safe_load((demo_run.path / "results/demo/cams_coarse/metrics.json").read_text())["test_models"] == [
        "tiny_clip"]  # the coarse CAMs never see SAM
    for alias in ("sam_masks", "cams_coarse", "seeds_coarse", "cams_fine", "seeds"):
        assert (demo_run.path / "results/demo" / alias).is_symlink(), alias
    store = demo_run.path / "results/demo/store"
    leftovers = [p for p in store.rglob("*") if p.is_file() and (".partial" in str(p) or ".tmp-" in p.name)]
    assert leftovers == []  # finished stages keep no resumable state and no temp files


@pytest.mark.parametrize(
    "edit, expected",
    [
        ("seeds_coarse:\n      gamma: 0.5\n", {"seeds_coarse", "prompts_seg_train", "cams_fine_dump", "seeds_fine"}),
        ("seeds_fine:\n      gamma: 0.5\n", {"seeds_fine"}),
        ("cams_fine:\n      caa: {box_thresh: 0.6}\n", {"cams_fine_dump", "seeds_fine"}),
    ],
)
def test_chain_invalidation(demo_run, tmp_path, edit, expected):
    wd = demo_run.copy(tmp_path / "wd")
    _set(wd, DEMO_PRESET_END, DEMO_PRESET_END.replace("    segmenter:", "    " + edit + "    segmenter:"))
    assert _stages_scheduled(wd) == with_scores(expected)


@pytest.mark.slow
def test_coarse_gamma_rerun_keeps_both_variants(demo_run, tmp_path):
    wd = demo_run.copy(tmp_path / "wd")
    before = os.readlink(wd.path / "results/demo/seeds")
    untouched = {
        p: p.stat().st_mtime_ns
        for stage in ("sam_masks", "prompts_cls_train", "cams_coarse_dump")
        for p in (wd.path / "results/demo/store" / stage).rglob("*") if p.is_file()
    }
    _set(wd, DEMO_PRESET_END, DEMO_PRESET_END.replace("    segmenter:", "    seeds_coarse:\n      gamma: 0.3\n    segmenter:"))
    wd.snakemake("--cores", "2", "results/demo/seeds")
    after = os.readlink(wd.path / "results/demo/seeds")
    assert after != before
    old, new = wd.path / "results/demo" / before, wd.path / "results/demo" / after
    changed = sum(
        int((np.asarray(Image.open(old / p.name)) != np.asarray(Image.open(p))).sum()) for p in new.glob("*.png")
    )
    assert len(list(old.glob("*.png"))) == len(list(new.glob("*.png"))) == 24 and changed > 0
    assert {p: p.stat().st_mtime_ns for p in untouched} == untouched


@pytest.mark.slow
def test_kill_during_seeding_then_recover(demo_run, tmp_path):
    edit = DEMO_PRESET_END.replace("    segmenter:", "    seeds_fine:\n      gamma: 0.75\n    segmenter:")
    reference = demo_run.copy(tmp_path / "ref")
    _set(reference, DEMO_PRESET_END, edit)
    reference.snakemake("--cores", "2", "results/demo/seeds")

    wd = demo_run.copy(tmp_path / "wd")
    _set(wd, DEMO_PRESET_END, edit)
    stalled_log = _run_until_stalled(wd, "results/demo/seeds", "seeds_fine", timeout=300)
    wd.snakemake("--unlock", "--cores", "1")
    wd.snakemake("--cores", "all", "--rerun-incomplete", "results/demo/seeds")
    lines = [ln for ln in stalled_log.read_text().splitlines() if "seeds_fine: image" in ln]
    assert lines and "image 4/24" in lines[0] and len(lines) == 21, lines
    got, ref = wd.path / "results/demo/seeds", reference.path / "results/demo/seeds"
    assert os.readlink(got) == os.readlink(ref)
    for png in ref.glob("*.png"):
        assert (got / png.name).read_bytes() == png.read_bytes(), png.name


def test_segmenter_change_schedules_only_the_segmenter(demo_run, tmp_path):
    wd = demo_run.copy(tmp_path / "wd")
    _set(wd, "      pretrained_backbone: false\n      crop: 128\n", "      pretrained_backbone: false\n      crop: 96\n")
    updated = set(wd.updated("results/demo/deeplab"))
    entries = {"/".join(p.split("/")[:5]) for p in updated if p.startswith("results/demo/store/")}
    assert {e.split("/")[3] for e in entries} == {"deeplab_train", "deeplab_eval"} and len(entries) == 2
    assert updated - {p for p in updated if p.startswith("results/demo/store/")} == {"results/demo/deeplab"}


def test_seeding_change_schedules_the_segmenter_too(demo_run, tmp_path):
    wd = demo_run.copy(tmp_path / "wd")
    _set(wd, DEMO_PRESET_END, DEMO_PRESET_END.replace("    segmenter:", "    seeds_fine:\n      gamma: 0.5\n    segmenter:"))
    stages = {p.split("/")[3] for p in wd.updated("results/demo/deeplab") if p.startswith("results/demo/store/")}
    assert stages == with_scores({"seeds_fine", "deeplab_train", "deeplab_eval"})


def test_deeplab_outputs(demo_run):
    out = demo_run.path / "results/demo/deeplab"
    metrics = yaml.safe_load((out / "metrics.json").read_text())
    assert metrics["num_images"] == 8 and set(metrics["miou"]) == {"single_scale", "ms_flip"}
    assert metrics["test_models"] == ["tiny_clip", "tiny_sam"]
    assert os.readlink(out / "model.pt").startswith("../../deeplab_train/") and (out / "model.pt").is_file()
    assert len(list((out / "ms_flip").glob("*.png"))) == 8
