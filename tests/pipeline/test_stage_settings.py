"""Every preset resolves for every stage and every dataset type; unsupported combinations fail at parse time."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from fmwsss.pipeline.config import Config, ConfigError
from fmwsss.pipeline.stage_settings import (caa_settings, check_sam, check_stage_settings, dataset_class_names,
                                            prompt_config, prompt_names, train_config)
from fmwsss.pipeline.stages import STAGES

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = yaml.safe_load((ROOT / "config.yaml").read_text())
CUSTOM_CLASSES = ("kettle", "teapot", "mug")


def _prompts(section: str):
    def resolve(settings: dict, runtime: dict, classes: tuple[str, ...]) -> None:
        fg, bg = prompt_names(settings, classes)
        cfg = prompt_config(settings[section], fg, bg)
        assert cfg.fg_names == fg and len(cfg.bg_names) == len(bg)
        if settings[section]["mode"] == "learned":
            train = train_config(settings[section], runtime, section)
            assert train.batch_size % train.micro_batches == 0 and train.positives == settings[section]["positives"]

    return resolve


def _cams(section: str):
    def resolve(settings: dict, runtime: dict, classes: tuple[str, ...]) -> None:
        prompt_names(settings, classes)
        caa = caa_settings(settings[section]["caa"])
        assert (caa is None) == (not settings[section]["caa"]["enabled"])

    return resolve


def _sam(settings: dict, runtime: dict, classes: tuple[str, ...]) -> None:
    from fmwsss.sam.build import SamSpeed, check_sam_settings

    check_sam_settings(settings["sam"])
    SamSpeed.from_runtime(runtime)


def _seeds(section: str):
    def resolve(settings: dict, runtime: dict, classes: tuple[str, ...]) -> None:
        assert settings[section]["method"] in ("sams", "argmax") and settings[section]["gamma"] > 0

    return resolve


def _segmenter(settings: dict, runtime: dict, classes: tuple[str, ...]) -> None:
    from fmwsss.segmentation.dataset import AugSettings
    from fmwsss.segmentation.train import check_settings

    check_settings(settings["segmenter"])
    AugSettings.from_settings(settings["segmenter"])
    if settings["segmenter"]["arch"] == "tiny":
        from fmwsss.segmentation.models import build_segmenter

        build_segmenter("tiny", len(classes) + 1, settings["segmenter"]["pretrained_backbone"])


def _segmenter_eval(settings: dict, runtime: dict, classes: tuple[str, ...]) -> None:
    assert all(s > 0 for s in settings["segmenter_eval"]["ms_scales"])


RESOLVE = {
    "sam_masks": _sam,
    "prompts_cls_train": _prompts("prompts_cls"),
    "cams_coarse_dump": _cams("cams_coarse"),
    "seeds_coarse": _seeds("seeds_coarse"),
    "prompts_seg_train": _prompts("prompts_seg"),
    "cams_fine_dump": _cams("cams_fine"),
    "seeds_fine": _seeds("seeds_fine"),
    "deeplab_train": _segmenter,
    "deeplab_eval": _segmenter_eval,
}


def test_every_stage_has_a_resolver():
    assert set(RESOLVE) == set(STAGES)


@pytest.fixture(scope="module")
def custom_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("custom")
    (root / "classes.txt").write_text("\n".join(CUSTOM_CLASSES) + "\n")
    return root


MATCHED = {"voc": "voc", "coco": "coco", "demo": "demo"}  # the dataset type each shipped preset is made for
NAMES_NULL = {"classes": {"fg_prompt_names": None}}  # README "Adding a dataset": prompts use the class names


def _config(custom_root: Path, runtime: dict | None = None, presets: dict | None = None) -> Config:
    """Each shipped preset on its own dataset type, and a custom dataset (README recipe) with each preset."""
    presets = presets or SHIPPED["presets"]
    datasets = {}
    for preset in presets:
        datasets[f"{MATCHED[preset]}_{preset}"] = {"type": MATCHED[preset], "preset": preset, "root": None}
        datasets[f"custom_{preset}"] = {"type": "custom", "preset": preset, "root": str(custom_root),
                                        "overrides": NAMES_NULL}
    return Config({"datasets": datasets, "presets": presets, "runtime": runtime or SHIPPED["runtime"]})


def test_every_preset_resolves_for_every_stage_and_dataset_type(custom_root):
    config = _config(custom_root)
    assert set(SHIPPED["presets"]) == set(MATCHED) and len(config.datasets) == 2 * len(MATCHED)
    check_stage_settings(config)
    for name, entry in config.datasets.items():
        classes = dataset_class_names(entry)
        assert classes is not None and len(classes) == {"voc": 20, "demo": 20, "coco": 80, "custom": 3}[entry["type"]]
        for stage, resolve in RESOLVE.items():
            resolve(config.settings(name), config.runtime, classes)


@pytest.mark.parametrize("kind, preset", [("custom", "voc"), ("custom", "demo"), ("coco", "voc"), ("voc", "coco")])
def test_preset_vocabulary_of_another_dataset_is_a_parse_time_error(custom_root, kind, preset):
    """The VOC presets name 20 VOC synonyms and the coco preset none; the class count must fit the dataset."""
    entry = {"type": kind, "preset": preset, "root": str(custom_root) if kind == "custom" else None}
    config = Config({"datasets": {"mine": entry}, "presets": SHIPPED["presets"]})
    if preset == "coco":  # fg_prompt_names null: synonyms of whatever list the dataset has, so it fits
        check_stage_settings(config)
        return
    with pytest.raises(ConfigError, match=rf"datasets\.mine \(preset {preset}\): classes\.fg_prompt_names has 20"):
        check_stage_settings(config)


def test_shipped_config_resolves_every_dataset():
    config = Config(copy.deepcopy(SHIPPED))
    check_stage_settings(config)
    coco_demo = config.settings("coco_demo")
    assert coco_demo["prompts_seg"]["positives"] == "image_tags"  # the coco preset, shrunk
    assert coco_demo["models"] == {"clip": "tiny_clip", "sam": "tiny_sam"}


def _with(preset: str, section: str, **values) -> dict:
    presets = copy.deepcopy(SHIPPED["presets"])
    presets[preset] = {**presets[preset], section: {**presets[preset].get(section, {}), **values}}
    return presets


@pytest.mark.parametrize("preset, section, values, key", [
    ("coco", "prompts_cls", {"loss": "cam_activation"}, "prompts_cls.loss"),
    ("voc", "prompts_seg", {"loss": "contrastive", "positives": "crop_labels"}, "prompts_seg.positives"),
    ("demo", "prompts_cls", {"fg_weight": 0.5}, "prompts_cls.fg_weight"),
    ("demo", "sam", {"implementation": "reference", "autocast": "bf16"}, "sam.autocast"),
    ("voc", "segmenter", {"arch": "tiny"}, "segmenter.pretrained_backbone"),
    ("coco", "classes", {"fg_prompt_names": ["a", "b"]}, "classes.fg_prompt_names"),
])
def test_unsupported_combination_names_dataset_preset_and_key(custom_root, preset, section, values, key):
    pattern = rf"datasets\.\w+ \(preset {preset}\): " + re.escape(key)
    with pytest.raises(ConfigError, match=pattern):
        check_stage_settings(_config(custom_root, presets=_with(preset, section, **values)))


def test_runtime_micro_batch_is_checked_against_every_batch(custom_root):
    runtime = {**SHIPPED["runtime"], "micro_batch": 3}
    with pytest.raises(ConfigError, match=r"runtime\.micro_batch 3 does not split prompts_cls\.batch_size"):
        check_stage_settings(_config(custom_root, runtime=runtime))
    runtime["micro_batch"] = 1  # splits every prompt batch, but DeepLab's BatchNorm needs two samples
    with pytest.raises(ConfigError, match=r"runtime\.micro_batch 1 must divide each GPU's share"):
        check_stage_settings(_config(custom_root, runtime=runtime))


def test_custom_class_file_read_without_opening_the_dataset(tmp_path):
    (tmp_path / "names.yaml").write_text("[a, b]\n")
    entry = {"type": "custom", "root": str(tmp_path), "options": {"classes": "names.yaml"}}
    assert dataset_class_names(entry) == ("a", "b")  # no images, no tag file: only the class list is read
    assert dataset_class_names({**entry, "options": {}}) is None  # unreadable: opening the dataset reports it
    assert dataset_class_names({**entry, "root": None}) is None


@pytest.mark.parametrize("implementation", ["reference", "fast"])
@pytest.mark.parametrize("autocast", ["none", "bf16", "fp16"])
def test_sam_check_agrees_with_the_generator_builder(implementation, autocast):
    from fmwsss.sam.build import check_sam_settings

    section = {"implementation": implementation, "autocast": autocast}
    try:
        check_sam_settings(section)
        builder_ok = True
    except ValueError:
        builder_ok = False
    try:
        check_sam(section)
        parse_ok = True
    except ConfigError:
        parse_ok = False
    assert parse_ok == builder_ok


def test_segmenter_gpus_must_split_the_global_batch(custom_root):
    runtime = {**SHIPPED["runtime"], "segmenter_gpus": 3}  # the voc preset's Mask2Former batch is 4
    with pytest.raises(ConfigError, match=r"runtime\.segmenter_gpus 3 must divide segmenter\.batch_size 4"):
        check_stage_settings(_config(custom_root, runtime=runtime, presets={"voc": SHIPPED["presets"]["voc"]}))
    runtime = {**SHIPPED["runtime"], "segmenter_gpus": 2, "micro_batch": 1}  # Mask2Former: no BatchNorm
    check_stage_settings(_config(custom_root, runtime=runtime, presets={"voc": SHIPPED["presets"]["voc"]}))
    runtime["micro_batch"] = 4  # larger than each GPU's share of 2
    with pytest.raises(ConfigError, match=r"runtime\.micro_batch 4 must divide each GPU's share 2"):
        check_stage_settings(_config(custom_root, runtime=runtime, presets={"voc": SHIPPED["presets"]["voc"]}))
