"""``fmwsss seed``: the single-image fine chain with tiny models on real VOC sample images."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from fmwsss.data.classes import VOC_BG_PROMPT_NAMES, VOC_CLASS_NAMES, VOC_FG_PROMPT_NAMES
from fmwsss.data.palette import voc_palette
from fmwsss.models.weights import MissingWeightsError
from fmwsss.cli.seed import ZERO_SHOT_WARNING, register
from fmwsss.cli.single_image import build_text_head, label_fractions, overlay
from fmwsss.cli.tags import TagError, class_ids, dataset_class_names
from fmwsss.prompts.learners import zero_shot_marker

REPO = Path(__file__).resolve().parents[1]
IMAGE_ID = "2007_000032"  # aeroplane + person
TAGS = ("aeroplane", "person")
TAG_IDS = {1, 15}




@pytest.fixture(scope="module")
def image(voc_sample) -> Path:
    return voc_sample / "JPEGImages" / f"{IMAGE_ID}.jpg"


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    from fmwsss.models.clip import create_tiny_clip
    from fmwsss.models.tiny_sam import create_tiny_sam

    root = tmp_path_factory.mktemp("weights")
    create_tiny_clip(root / "tiny_clip.pt", seed=0)
    create_tiny_sam(root / "tiny_sam.pth", seed=0)
    return root


@pytest.fixture(scope="module")
def config_path(tmp_path_factory, voc_sample) -> Path:
    """The repo's demo preset (tiny models), dataset ``demo`` on the shared sample; 4 SAM points per side
    (16 prompts, a quarter of the preset's) keep the tiny SAM's decoder cheap."""
    shipped = yaml.safe_load((REPO / "config.yaml").read_text())
    demo = {"type": "demo", "root": str(voc_sample), "preset": "demo",
            "overrides": {"sam": {"points_per_side": 4}}}
    cfg = {"datasets": {"demo": demo},
           "presets": {"demo": shipped["presets"]["demo"]}}
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def tiny_weights(weights_dir, monkeypatch) -> Path:
    monkeypatch.setenv("FMWSSS_WEIGHTS_DIR", str(weights_dir))
    return weights_dir


@pytest.fixture(scope="module")
def clip_cam(weights_dir):
    from fmwsss.cams.clip_wrapper import ClipCam
    from fmwsss.models.clip import load_clip

    return ClipCam(load_clip(weights_dir / "tiny_clip.pt"))


@pytest.fixture(scope="module")
def seg_prompts(tmp_path_factory, clip_cam) -> Path:
    """A freshly initialised segmentation learner (class-specific contexts, name in front, empty bg names)."""
    from fmwsss.prompts.learners import PromptLearner, save_prompts, seg_prompt_config

    learner = PromptLearner(clip_cam, seg_prompt_config(VOC_FG_PROMPT_NAMES, len(VOC_BG_PROMPT_NAMES), seed=1))
    return save_prompts(learner, tmp_path_factory.mktemp("prompts") / "prompts.pt")


def seed_cmd(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="fmwsss")
    register(parser.add_subparsers())
    args = parser.parse_args(["seed", *argv])
    return args.func(args)


def check_seed_png(path: Path, size: tuple[int, int]) -> np.ndarray:
    with Image.open(path) as img:
        assert img.mode == "P"
        assert img.size == size
        assert img.getpalette() == voc_palette()
        labels = np.array(img)
    assert set(np.unique(labels).tolist()) <= {0} | TAG_IDS
    assert (labels > 0).any(), "SAMS keeps each tagged class's best mask, so some foreground must be painted"
    return labels


def test_zero_shot_writes_palette_png_and_warns(tiny_weights, config_path, image, tmp_path, capsys):
    out = tmp_path / "seed.png"
    assert seed_cmd(str(image), "--tags", ",".join(TAGS), "-o", str(out), "--config", str(config_path),
                    "--device", "cpu") == 0
    with Image.open(image) as img:
        size = img.size
    labels = check_seed_png(out, size)
    captured = capsys.readouterr()
    assert ZERO_SHOT_WARNING in captured.err
    summary = captured.out.strip().splitlines()[-1]
    fractions = label_fractions(labels, [0, 1, 15])
    assert f"aeroplane {100 * fractions[1]:.1f}%" in summary and f"person {100 * fractions[15]:.1f}%" in summary
    assert str(out) in summary
    assert not list(tmp_path.glob(".*tmp*")), "no temporary file may be left behind"


def test_prompts_file_no_warning_and_overlay(tiny_weights, config_path, image, seg_prompts, tmp_path, capsys):
    out, ov = tmp_path / "seed.png", tmp_path / "overlay.png"
    assert seed_cmd(str(image), "--tags", "person, aeroplane", "-o", str(out), "--config", str(config_path),
                    "--prompts", str(seg_prompts), "--overlay", str(ov), "--device", "cpu") == 0
    assert ZERO_SHOT_WARNING not in capsys.readouterr().err
    with Image.open(image) as img:
        rgb = np.asarray(img.convert("RGB"))
    labels = check_seed_png(out, (rgb.shape[1], rgb.shape[0]))
    with Image.open(ov) as img:  # the legend (tests/test_legend.py) is appended below the image
        assert img.mode == "RGB" and img.width == rgb.shape[1] and img.height > rgb.shape[0]
        blended = np.asarray(img)[:rgb.shape[0]]
    assert np.array_equal(blended[labels == 0], rgb[labels == 0])
    assert np.array_equal(blended, overlay(rgb, labels, voc_palette()))


def test_run_folder_uses_current_prompts_entry(tiny_weights, config_path, image, seg_prompts, tmp_path, capsys):
    from fmwsss.pipeline.config import Config
    from fmwsss.pipeline.plan import Plan

    run = tmp_path / "results" / "demo"
    run.mkdir(parents=True)  # a results folder without the prompts entry
    argv = [str(image), "--tags", "aeroplane", "-o", str(tmp_path / "s.png"), "--config", str(config_path),
            "--run", str(run), "--device", "cpu"]
    key = Plan(Config.from_file(config_path), results=str(run.parent)).key("demo", "prompts_seg_train")
    expected = run / "store" / "prompts_seg_train" / key / "prompts.pt"
    with pytest.raises(FileNotFoundError, match=str(expected)):
        seed_cmd(*argv)
    expected.parent.mkdir(parents=True)
    expected.write_bytes(seg_prompts.read_bytes())
    assert seed_cmd(*argv) == 0
    assert ZERO_SHOT_WARNING not in capsys.readouterr().err
    with Image.open(tmp_path / "s.png") as img:
        assert set(np.unique(np.array(img)).tolist()) <= {0, 1}


def test_unknown_tag_lists_valid_names(tiny_weights, config_path, image, tmp_path):
    out = tmp_path / "seed.png"
    with pytest.raises(TagError, match="'kitten'") as err:
        seed_cmd(str(image), "--tags", "cat,kitten", "-o", str(out), "--config", str(config_path))
    assert all(name in str(err.value) for name in VOC_CLASS_NAMES)
    assert not out.exists()


def test_missing_weights_names_file_and_command(config_path, image, tmp_path, monkeypatch):
    empty = tmp_path / "no-weights"
    monkeypatch.setenv("FMWSSS_WEIGHTS_DIR", str(empty))
    with pytest.raises(MissingWeightsError) as err:
        seed_cmd(str(image), "--tags", "cat", "-o", str(tmp_path / "s.png"), "--config", str(config_path))
    msg = str(err.value)
    assert str(empty / "tiny_clip.pt") in msg and "fmwsss weights make-tiny" in msg


def test_prompts_for_other_class_count_rejected(tiny_weights, clip_cam, config_path, image, tmp_path):
    from fmwsss.prompts.learners import PromptLearner, save_prompts, seg_prompt_config

    path = save_prompts(PromptLearner(clip_cam, seg_prompt_config(("a", "b"), 2)), tmp_path / "p.pt")
    with pytest.raises(ValueError, match="2 foreground classes, the dataset has 20"):
        seed_cmd(str(image), "--tags", "cat", "-o", str(tmp_path / "s.png"), "--config", str(config_path),
                 "--prompts", str(path))


def test_zero_shot_marker_gives_clip_es_prompts(clip_cam, config_path, tmp_path):
    """A zero_shot-mode prompt stage writes a marker, not a learner: it must give the CLIP-ES prompts."""
    from fmwsss.pipeline.config import Config
    from fmwsss.prompts.learners import ZeroShotPrompts

    marker = tmp_path / "prompts.pt"
    torch.save({"mode": "zero_shot", "fg_names": VOC_FG_PROMPT_NAMES, "bg_names": VOC_BG_PROMPT_NAMES}, marker)
    assert zero_shot_marker(marker) == (VOC_FG_PROMPT_NAMES, VOC_BG_PROMPT_NAMES)
    settings = Config.from_file(config_path).settings("demo")
    head = build_text_head(clip_cam, marker, settings, VOC_CLASS_NAMES)
    assert isinstance(head, ZeroShotPrompts) and head.n_fg == 20
    default = build_text_head(clip_cam, None, settings, VOC_CLASS_NAMES)
    assert torch.equal(head.text_features(clip_cam), default.text_features(clip_cam))
    (tmp_path / "junk.pt").write_text("not torch")
    with pytest.raises(ValueError, match="junk.pt"):
        zero_shot_marker(tmp_path / "junk.pt")


def test_class_ids_sorted_unique():
    assert class_ids(["person", "cat", "person"], VOC_CLASS_NAMES).tolist() == [8, 15]
    with pytest.raises(TagError, match="no tags"):
        class_ids([], VOC_CLASS_NAMES)


def test_dataset_class_names_need_no_data_for_fixed_lists(tmp_path):
    from fmwsss.pipeline.config import Config

    cfg = Config({"datasets": {"v": {"type": "voc", "root": None, "preset": "p"},
                               "c": {"type": "custom", "root": None, "preset": "p"}}, "presets": {"p": {}}})
    assert dataset_class_names(cfg, "v") == VOC_CLASS_NAMES
    with pytest.raises(ValueError, match="datasets.c.root"):
        dataset_class_names(cfg, "c")


def test_overlay_blends_only_labelled_pixels():
    rgb = np.full((2, 2, 3), 100, np.uint8)
    seed = np.array([[0, 1], [2, 255]], np.uint8)
    out = overlay(rgb, seed, voc_palette(), alpha=0.5)
    assert out[0, 0].tolist() == [100, 100, 100] and out[1, 1].tolist() == [100, 100, 100]
    assert out[0, 1].tolist() == [114, 50, 50]  # halfway to VOC colour 1 = (128, 0, 0)
    assert out[1, 0].tolist() == [50, 114, 50]
    assert label_fractions(seed, [0, 1, 3]) == {0: 0.25, 1: 0.25, 3: 0.0}


@pytest.mark.parametrize("flag, expected", [((), "cuda:3"), (("--device", "cpu"), "cpu")])
def test_device_defaults_to_the_configs_runtime_device(tiny_weights, config_path, image, tmp_path, monkeypatch,
                                                       flag, expected):
    """Without --device the chain runs where the pipeline's jobs run (runtime.device), not on whatever is found."""
    from fmwsss.cli.single_image import FineChain

    cfg = yaml.safe_load(config_path.read_text())
    cfg["runtime"] = {"device": "cuda:3"}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    seen = []

    def record(settings, class_names, prompts, device, speed):
        seen.append(device)
        raise RuntimeError("stop before loading any model")

    monkeypatch.setattr(FineChain, "load", staticmethod(record))
    with pytest.raises(RuntimeError, match="stop before"):
        seed_cmd(str(image), "--tags", "person", "-o", str(tmp_path / "s.png"), "--config", str(path), *flag)
    assert seen == [torch.device(expected)]
