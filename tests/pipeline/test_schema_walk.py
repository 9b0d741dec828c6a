"""Every hashed setting is read: a changed value changes what the code that reads it produces.

A stage key hashes whole settings sections (``fmwsss.pipeline.stages``). A leaf that no code reads would
still move keys (and rerun GPU hours) while changing nothing, or pretend to be a knob it is not. ``PROBES``
maps every leaf of every hashed section to a probe: a call of the library code the pipeline uses for that
section, on tiny inputs. The test runs each probe with the demo settings and with the leaf changed and
asserts the outputs differ (a refusal, e.g. a ConfigError for an unsupported value, counts as different).
The table must cover exactly the schema's leaves, so a new key without a probe fails here.
"""
from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import pytest
import torch

from fmwsss.pipeline.config import Config, _resolve, load_schema
from fmwsss.pipeline.stages import SCORES, STAGES

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("aeroplane", "bicycle", "bird")  # a 3-class dataset
RUNTIME = {"micro_batch": None, "checkpoint_every": 1000}


def hashed_leaves() -> set[str]:
    """Dotted paths of every leaf under the sections some stage or score entry hashes (objects with properties
    recurse)."""
    schema = load_schema()
    settings = _resolve(schema["$defs"]["settings"], schema)["properties"]
    out: set[str] = set()

    def walk(node: dict, path: str) -> None:
        node = _resolve(node, schema)
        if node.get("type") == "object" and "properties" in node:
            for key, sub in node["properties"].items():
                walk(sub, f"{path}.{key}")
        else:
            out.add(path)

    for section in {s for stage in (*STAGES.values(), *SCORES.values()) for s in stage.sections}:
        walk(settings[section], section)
    return out


def _set(settings: dict, path: str, value: Any) -> dict:
    out = copy.deepcopy(settings)
    *parents, last = path.split(".")
    node = out
    for p in parents:
        node = node[p]
    node[last] = value
    return out


def _digest(obj: Any) -> str:
    """A stable digest of nested tensors / arrays / numbers / strings."""
    h = hashlib.sha256()

    def add(x: Any) -> None:
        if torch.is_tensor(x):
            x = x.detach().cpu().numpy()
        if isinstance(x, np.ndarray):
            h.update(f"{x.dtype}{x.shape}".encode())
            h.update(np.ascontiguousarray(x).tobytes())
        elif isinstance(x, dict):
            for k in sorted(x):
                h.update(str(k).encode())
                add(x[k])
        elif isinstance(x, (list, tuple)):
            h.update(b"[")
            for v in x:
                add(v)
            h.update(b"]")
        else:
            h.update(repr(x).encode())

    add(obj)
    return h.hexdigest()


# ---------------------------------------------------------------- tiny inputs shared by the probes


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread: on a loaded machine, tiny tensors run many times faster than with a thread pool."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def env(tmp_path_factory, tiny_clip_path, one_thread):
    from fmwsss.cams.clip_wrapper import ClipCam
    from fmwsss.models.clip import load_clip
    from fmwsss.models.sam import load_sam
    from fmwsss.models.tiny_sam import create_tiny_sam

    tmp = tmp_path_factory.mktemp("walk")
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, size=(6, 3))
    items_cls, items_seg, items_dl = [], [], []
    for k in range(4):
        blocks = np.kron(rng.integers(0, 6, size=(4, 5)), np.ones((12, 12), int))  # 48 x 60
        rgb = np.clip(palette[blocks] + rng.integers(-6, 7, (48, 60, 3)), 0, 255).astype(np.uint8)
        label = (blocks % 4).astype(np.uint8)  # classes 0..3
        cv2.imwrite(str(tmp / f"{k}.png"), rgb[..., ::-1])
        cv2.imwrite(str(tmp / f"{k}_seed.png"), label)
        items_cls.append((f"i{k}", tmp / f"{k}.png", [1 + k % 3]))  # one tag: the contrastive loss has negatives
        items_seg.append((f"i{k}", tmp / f"{k}.png", tmp / f"{k}_seed.png"))
        items_dl.append((f"i{k}", tmp / f"{k}.png", tmp / f"{k}_seed.png"))
    base = Config.from_file(ROOT / "config.yaml").settings("demo")
    base["classes"]["fg_prompt_names"] = None  # the 3 class names themselves
    for section in ("prompts_cls", "prompts_seg"):  # two iterations on 48 x 60 images, 32 x 32 crops
        base[section].update(iterations=2, warmup_iters=1, batch_size=2)
        base[section]["augment"].update(long_side=[36, 44], crop=32)
    base["segmenter"].update(crop=16, batch_size=2, iterations=2)
    base["sam"].update(points_per_side=6)
    sam = load_sam(create_tiny_sam(tmp / "tiny_sam.pt", seed=0), "tiny", "cpu")
    return dict(tmp=tmp, clip_path=tiny_clip_path, clip_cam=ClipCam(load_clip(tiny_clip_path, "cpu")), sam=sam,
                rgb=cv2.imread(str(tmp / "0.png"))[..., ::-1].copy(),
                label=cv2.imread(str(tmp / "0_seed.png"), cv2.IMREAD_UNCHANGED), items_cls=items_cls, items_seg=items_seg,
                items_dl=items_dl, base=base, counter=[0])


def _fresh(env: dict, name: str) -> Path:
    env["counter"][0] += 1
    path = env["tmp"] / f"{name}-{env['counter'][0]}"
    path.mkdir()
    return path


# ---------------------------------------------------------------- probes: settings -> output


def probe_sam(settings: dict, env: dict):
    from fmwsss.sam.build import build_generator

    generator = build_generator(env["sam"], settings["sam"])
    masks = generator.generate(env["rgb"])
    # sam.implementation: the fast generator reproduces the reference's masks (tests/sam/test_fast.py), so on
    # tiny inputs only the generator built differs; it stays hashed because the two are not bitwise equal
    return type(generator).__name__, masks.masks, masks.level, masks.predicted_iou, masks.stability


def probe_shards(settings: dict, env: dict):
    from fmwsss.data.shards import shard_ids

    return shard_ids([f"i{k}" for k in range(10)], settings["data"]["shard_size"])


def _prompts(section: str) -> Callable:
    def probe(settings: dict, env: dict):
        """What the prompts_*_train stage makes, as text features (pipeline.entrypoints.prompts_train)."""
        from fmwsss.pipeline.stage_settings import prompt_config, prompt_names, train_config
        from fmwsss.prompts.learners import ZeroShotPrompts, load_prompts
        from fmwsss.prompts.train import train_prompts

        fg, bg = prompt_names(settings, NAMES)
        sec = settings[section]
        if sec["mode"] == "zero_shot":
            return ZeroShotPrompts(env["clip_cam"], fg, bg).text_features(env["clip_cam"])
        cfg = train_config(sec, RUNTIME, section)
        items = env["items_cls"] if cfg.task == "cls" else env["items_seg"]
        work = _fresh(env, section)
        out = train_prompts(items, env["clip_path"], prompt_config(sec, fg, bg), cfg, work, work / "p.pt",
                            log=lambda m: None)
        with torch.no_grad():
            return load_prompts(out, env["clip_cam"]).text_features(env["clip_cam"])

    return probe


def _prompt_init(section: str) -> Callable:
    def probe(settings: dict, env: dict):
        """The learner's initial text features (layout, names, init draw), as built for training."""
        from fmwsss.pipeline.stage_settings import prompt_config, prompt_names
        from fmwsss.prompts.learners import PromptLearner

        learner = PromptLearner(env["clip_cam"], prompt_config(settings[section], *prompt_names(settings, NAMES)))
        with torch.no_grad():
            return learner.text_features(env["clip_cam"])

    return probe


def _prompt_data(section: str) -> Callable:
    def probe(settings: dict, env: dict):
        """The trainer's first batches (sampler + augmentation) and its learning-rate schedule."""
        from fmwsss.pipeline.stage_settings import train_config
        from fmwsss.prompts.train import batch_indices, lr_at, make_batch

        cfg = train_config(settings[section], RUNTIME, section)
        items = env["items_cls"] if cfg.task == "cls" else env["items_seg"]
        batches = [make_batch(items, batch_indices(it, len(items), cfg), it, cfg, len(NAMES), _load_rgb, _load_png)
                   for it in range(2)]
        return [(b.images, b.present, b.labels) for b in batches], [lr_at(it, cfg) for it in range(4)]

    return probe


def _load_rgb(path: Path) -> np.ndarray:
    return cv2.imread(str(path))[..., ::-1].copy()


def _load_png(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def _cams(section: str) -> Callable:
    def probe(settings: dict, env: dict):
        """One image through the CAM dump with zero-shot prompts (pipeline.entrypoints.cams_dump)."""
        from fmwsss.cams.dump import ZeroShot, dump_cams
        from fmwsss.cams.shards import CamShardReader
        from fmwsss.pipeline.stage_settings import caa_settings, prompt_names

        caa = settings[section]["caa"]
        work = _fresh(env, section)
        final = dump_cams(env["items_cls"][:1], env["clip_path"], ZeroShot(*prompt_names(settings, NAMES)),
                          caa_settings(caa), work / "p.h5", work / "s.h5", log=lambda m: None,
                          n_attn_layers=caa["last_n_layers"])
        with CamShardReader(final) as reader:
            return reader.read("i0").cam_caa

    return probe


def _seed_inputs():
    """A 6 x 8 image: masks = left half (level 0), right half (level 1), top rows (level 2); CAMs at 3 x 4."""
    masks = np.zeros((3, 6, 8), bool)
    masks[0, :, :4] = masks[1, :, 4:] = masks[2, :2] = True
    from fmwsss.sam.types import ImageMasks

    im = ImageMasks(masks, np.array([0, 1, 2], np.int8), np.ones(3, np.float32), np.ones(3, np.float32),
                    np.zeros((3, 4), np.int32), masks.reshape(3, -1).sum(1))
    cams = np.array([[[0.9, 0.8, 0.1, 0.0]] * 3, [[0.0, 0.1, 0.3, 0.2]] * 3], np.float32)  # (2, 3, 4)
    return im, cams, np.array([1, 2])


def _seeds(section: str) -> Callable:
    def probe(settings: dict, env: dict):
        from fmwsss.seeding import seed_image

        masks, cams, classes = _seed_inputs()
        return seed_image(settings[section], cams, classes, (6, 8), masks, device="cpu")

    return probe


def probe_eval(settings: dict, env: dict):
    """The CAM score entries score CAMs by argmax with eval.cam_bg_power (pipeline.scoring.cam_pairs)."""
    from fmwsss.seeding import argmax_seed

    _, cams, classes = _seed_inputs()
    return argmax_seed(cams, classes, (6, 8), settings["eval"]["cam_bg_power"], device="cpu")


def probe_segmenter(settings: dict, env: dict):
    """Two training iterations (schedule, sampler, initialisation): segmentation.train_segmenter."""
    from fmwsss.segmentation import train_segmenter
    from fmwsss.segmentation.models import load_segmenter

    work = _fresh(env, "segmenter")
    out = train_segmenter(env["items_dl"], settings["segmenter"], 4, work / "model.pt", work / "partial",
                          log=lambda m: None)
    model, _ = load_segmenter(out)
    return model.state_dict()


def probe_segmenter_model(settings: dict, env: dict):
    from fmwsss.segmentation.models import build_segmenter

    sec = settings["segmenter"]
    torch.manual_seed(0)
    return {k: tuple(v.shape) for k, v in build_segmenter(sec["arch"], 4, sec["pretrained_backbone"]).state_dict().items()}


def probe_segmenter_aug(settings: dict, env: dict):
    from fmwsss.segmentation.dataset import AugSettings, augment

    aug = AugSettings.from_settings(settings["segmenter"])
    return [augment(env["rgb"], env["label"], np.random.default_rng(k), aug) for k in range(3)]


def probe_segmenter_optim(settings: dict, env: dict):
    """Two steps of segmentation.train.make_optimizer's SGD on a stand-in (backbone + head) with a fixed loss."""
    from fmwsss.segmentation.train import make_optimizer

    torch.manual_seed(0)
    model = torch.nn.Module()
    model.backbone, model.classifier = torch.nn.Linear(3, 3), torch.nn.Linear(3, 2)
    optim = make_optimizer(model, settings["segmenter"])
    x = torch.ones(1, 3)
    for _ in range(2):
        optim.zero_grad()
        model.classifier(model.backbone(x)).square().sum().backward()
        optim.step()
    return model.state_dict()


def probe_segmenter_eval(settings: dict, env: dict):
    from fmwsss.segmentation.infer import predict_probs, window_for
    from fmwsss.segmentation.models import build_segmenter

    torch.manual_seed(0)
    model = build_segmenter("tiny", 4, False).eval()
    evaluation = settings["segmenter_eval"]
    window = window_for(evaluation["inference"], min(env["rgb"].shape[:2]) // 2)  # slide: several windows
    with torch.no_grad():
        return predict_probs(model, env["rgb"], evaluation["ms_scales"], flip=True, crop=window)


def _table() -> dict[str, tuple[Callable, Any, dict]]:
    """leaf -> (probe, changed value, other leaves set first in both runs)."""
    crops = {"sam.crop_n_layers": 1}
    t: dict[str, tuple[Callable, Any, dict]] = {
        "sam.points_per_side": (probe_sam, 5, {}),
        "sam.pred_iou_thresh": (probe_sam, 2.0, {}),
        "sam.stability_score_thresh": (probe_sam, 0.999, {}),
        "sam.stability_score_offset": (probe_sam, 4.0, {"sam.stability_score_thresh": 0.5}),
        "sam.box_nms_thresh": (probe_sam, 1.0, {}),
        "sam.crop_n_layers": (probe_sam, 1, {}),
        "sam.crop_nms_thresh": (probe_sam, 0.2, crops),
        "sam.crop_overlap_ratio": (probe_sam, 0.9, crops),
        "sam.crop_n_points_downscale_factor": (probe_sam, 1, crops),
        "sam.min_mask_region_area": (probe_sam, 1000, {}),
        "sam.level_iou_offsets": (probe_sam, [-1.0, -1.0, -1.0], {}),
        "sam.level_nms_offsets": (probe_sam, [1.0, 0.0, 0.0], {}),
        "sam.level_stability_bias": (probe_sam, [-1.0, -1.0, -1.0], {}),
        "sam.implementation": (probe_sam, "reference", {}),
        "sam.autocast": (probe_sam, "bf16", {}),
        "sam.rsw_thresh": (probe_sam, 0.0, {}),
        "data.shard_size": (probe_shards, 3, {}),
        "classes.fg_prompt_names": (_prompt_init("prompts_cls"), ["plane", "bike", "bird avian"], {}),
        "classes.bg_names": (_prompt_init("prompts_cls"), ["sky", "road"], {}),
        "eval.cam_bg_power": (probe_eval, 0.05, {}),
        "segmenter_eval.ms_scales": (probe_segmenter_eval, [1.0, 0.5], {}),
        "segmenter_eval.inference": (probe_segmenter_eval, "slide", {}),
    }
    for section, changes in (
        ("prompts_cls", {"ctx_len": 4, "class_specific": True, "name_position": "front", "bg_names": "empty",
                         "init_std": 0.5, "seed": 7}),
        ("prompts_seg", {"ctx_len": 4, "class_specific": False, "name_position": "end", "bg_names": "named",
                         "init_std": 0.5, "seed": 7}),
    ):
        init, data, train = _prompt_init(section), _prompt_data(section), _prompts(section)
        jitter = {f"{section}.augment.color_jitter.p": 1.0}
        t.update({f"{section}.{key}": (init, value, {}) for key, value in changes.items()})
        t.update({
            f"{section}.mode": (train, "zero_shot", {}),
            f"{section}.loss": (data, "cam_activation" if section == "prompts_cls" else "contrastive", {}),
            f"{section}.positives": (data, "crop_labels" if section == "prompts_cls" else "image_tags", {}),
            f"{section}.iterations": (data, 3, {}),
            f"{section}.warmup_iters": (data, 0, {}),
            f"{section}.warmup_lr": (data, 0.5, {}),
            f"{section}.lr": (data, 0.5, {}),
            f"{section}.momentum": (train, 0.0, {f"{section}.warmup_lr": 0.5}),
            f"{section}.weight_decay": (train, 0.5, {}),
            f"{section}.fg_weight": (train, 0.5, {}),
            f"{section}.bg_weight": (train, 0.5, {}),
            f"{section}.batch_size": (data, 1, {}),
            f"{section}.augment.color_jitter.p": (data, 1.0, {}),
            f"{section}.augment.color_jitter.brightness": (data, 100.0, jitter),
            f"{section}.augment.color_jitter.contrast": (data, [0.1, 0.2], jitter),
            f"{section}.augment.color_jitter.saturation": (data, [0.1, 0.2], jitter),
            f"{section}.augment.color_jitter.hue": (data, 90, jitter),
            f"{section}.augment.long_side": (data, [56, 60], {}),
            f"{section}.augment.crop": (data, 16, {}),
            f"{section}.augment.hflip": (data, 1.0, {f"{section}.augment.hflip": 0.0}),
        })
    for section in ("cams_coarse", "cams_fine"):
        probe = _cams(section)
        t.update({
            f"{section}.caa.enabled": (probe, False, {f"{section}.caa.enabled": True}),
            f"{section}.caa.last_n_layers": (probe, 1, {}),
            f"{section}.caa.sinkhorn_iters": (probe, 0, {}),
            f"{section}.caa.power": (probe, 1, {}),
            f"{section}.caa.box_thresh": (probe, 0.95, {}),
            f"{section}.caa.propagate": (probe, "score", {f"{section}.caa.propagate": "raw_cam"}),
        })
    for section in ("seeds_coarse", "seeds_fine"):
        probe = _seeds(section)
        t.update({
            f"{section}.method": (probe, "argmax", {}),
            f"{section}.gamma": (probe, 5.0, {}),
            f"{section}.argmax_bg_power": (probe, 0.05, {f"{section}.method": "argmax"}),
        })
    seg = {
        "arch": (probe_segmenter_model, "deeplabv3_resnet50"), "pretrained_backbone": (probe_segmenter_model, True),
        "crop": (probe_segmenter_aug, 24), "scale_range": (probe_segmenter_aug, [0.5, 0.6]),
        "flip": (probe_segmenter_aug, False), "color_jitter": (probe_segmenter_aug, 0.5),
        "lr": (probe_segmenter_optim, 0.5), "backbone_lr_mult": (probe_segmenter_optim, 1.0),
        "momentum": (probe_segmenter_optim, 0.0), "weight_decay": (probe_segmenter_optim, 0.1),
        "batch_size": (probe_segmenter, 4), "iterations": (probe_segmenter, 3),
        "poly_power": (probe_segmenter, 5.0), "seed": (probe_segmenter, 7),
    }
    seg.update({"optimizer": (probe_segmenter_optim, "adamw"), "grad_clip": (probe_segmenter, 1e-6)})
    t.update({f"segmenter.{k}": (probe, v, {}) for k, (probe, v) in seg.items()})
    m2f = {"segmenter.arch": "tiny_mask2former", "segmenter.pretrained_backbone": False, "segmenter.crop": 32,
           "segmenter.optimizer": "adamw", "segmenter.lr": 1e-3}
    t.update({f"segmenter.mask2former.{k}": (probe_segmenter, v, m2f) for k, v in {
        "num_queries": 4, "class_weight": 0.5, "mask_weight": 0.5, "dice_weight": 0.5, "no_object_weight": 0.5,
        "train_points": 64, "precision": "bf16"}.items()})
    return t


PROBES = _table()


def _outcome(probe: Callable, settings: dict, env: dict) -> str:
    try:
        return _digest(probe(settings, env))
    except (ValueError, RuntimeError) as exc:  # ConfigError is a ValueError: a refused value
        return f"refused: {type(exc).__name__}: {exc}"


def test_probe_table_covers_every_hashed_leaf():
    leaves = hashed_leaves()
    assert len(leaves) > 80  # the walk reaches into nested sections (caa, augment, color_jitter)
    assert sorted(leaves - set(PROBES)) == [], "hashed settings without a probe"
    assert sorted(set(PROBES) - leaves) == [], "probes for settings the schema does not have"


@pytest.mark.slow
def test_every_hashed_leaf_changes_its_probe_output(env):
    cache: dict[str, str] = {}
    same = []
    for leaf, (probe, value, preset) in sorted(PROBES.items()):
        base = env["base"]
        for path, v in preset.items():
            base = _set(base, path, v)
        key = _digest((probe.__qualname__, getattr(probe, "__closure__", None) and
                       [c.cell_contents for c in probe.__closure__], base))
        if key not in cache:
            cache[key] = _outcome(probe, base, env)
        changed = _outcome(probe, _set(base, leaf, value), env)
        if changed == cache[key]:
            same.append(leaf)
        elif changed.startswith("refused") and not cache[key].startswith("refused"):
            print(f"{leaf} = {value!r}: {changed[:160]}")
    assert same == [], f"changing these hashed settings changed nothing: {same}"
