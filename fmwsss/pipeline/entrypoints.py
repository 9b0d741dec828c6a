"""What each Snakemake job runs. Scripts in workflow/scripts/ are one call into here.

Each function takes the job's ``snakemake`` object (input, output, params, threads, log, wildcards), sets up
logging and threads, and calls one library function. Params hold the canonical spec and the runtime knobs,
so a job never re-reads config.yaml.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from fmwsss.pipeline.integrity import require_intact
from fmwsss.pipeline.store import clean_stale_temps, make_alias, write_spec

if TYPE_CHECKING:
    import numpy as np


@contextlib.contextmanager
def job_log(path: str | None) -> Iterator[Callable[[str], None]]:
    """Send stderr to the rule's log file (fresh per attempt) and yield a line logger."""
    if path is None:
        yield lambda msg: print(msg, file=sys.stderr, flush=True)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as fh:
        old = sys.stderr
        sys.stderr = fh
        try:
            yield lambda msg: print(f"{time.strftime('%H:%M:%S')} {msg}", file=fh, flush=True)
        except BaseException:
            import traceback

            traceback.print_exc(file=fh)
            raise
        finally:
            sys.stderr = old


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(threads)))


def _job_device(smk: Any, log: Callable[[str], None]) -> contextlib.AbstractContextManager:
    """The job's torch device from ``runtime.device``, held until the job ends: on a workstation with N GPUs,
    N concurrent jobs get N different GPUs (imported lazily: the Snakefile imports this module)."""
    from fmwsss.devices import job_device

    return job_device(_runtime(smk)["device"], log)


def _log_path(smk: Any) -> str | None:
    return smk.log[0] if len(smk.log) else None


def _runtime(smk: Any) -> dict:
    """The unhashed runtime knobs, read from the job's config (never params: they would trigger reruns)."""
    from fmwsss.pipeline.config import Config

    return Config(smk.config).runtime


def sam_masks(smk: Any) -> None:
    """One shard of SAM masks: resumable per image in the stage's .partial directory."""
    from fmwsss.models.weights import get_weight
    from fmwsss.sam.build import SamSpeed
    from fmwsss.sam.run import run_sam_shard

    with job_log(_log_path(smk)) as log, _job_device(smk, log) as device:
        _set_threads(smk.threads)
        p = smk.params
        runtime = _runtime(smk)
        ds = _job_plan(smk, "sam_masks")
        final = Path(smk.output.shard)
        partial_dir = Path(p.partial)
        partial_dir.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(final.parent)
        weight = get_weight(p.weights)
        items = [(i, ds.dataset.image_path(i)) for i in ds.shard_ids(final.stem)]
        log(f"sam_masks: shard {final.stem} of {ds.name}, {len(items)} images, weights {p.weights}")
        run_sam_shard(
            items=items,
            model_path=Path(smk.input.weights),
            arch=weight.arch,
            settings=p.spec["settings"]["sam"],
            partial_path=partial_dir / final.name,
            final_path=final,
            device=device,
            speed=SamSpeed.from_runtime(runtime),
            num_workers=runtime["num_workers"],
            log=log,
        )


def finalize_job(shards: list[str], spec_path: str, spec: dict, wildcards: Any, log_path: str) -> None:
    """Check every shard of a sharded stage is complete, then write spec.json (marks the entry done)."""
    from fmwsss.io.shards import require_complete

    with job_log(log_path) as log:
        for shard in shards:
            require_complete(shard)
        write_spec(Path(spec_path).parent, wildcards.key, spec, wildcards.dataset)
        log(f"{spec['stage']}: {len(shards)} shards complete, wrote {spec_path}")


def alias_job(target: str, link: str, log_path: str) -> None:
    """Re-point results/{dataset}/{alias} at the current store entry."""
    with job_log(log_path) as log:
        make_alias(target, link)
        log(f"{link} -> {target}")


def fetch_weights_job(name: str, dest: str, log_path: str) -> None:
    """Download one registered weight file, verified by size and sha256, written atomically."""
    from fmwsss.models.download import fetch_weight

    with job_log(log_path) as log:
        path = fetch_weight(name, dest_dir=Path(dest).parent)
        log(f"weights {name}: {path} verified")


def make_tiny_job(clip_path: str, sam_path: str, seed: int, log_path: str) -> None:
    """Create the tiny random-weight test models (an explicit choice of `models: tiny_*`, never a fallback)."""
    from fmwsss.models.clip import create_tiny_clip
    from fmwsss.models.tiny_sam import create_tiny_sam

    with job_log(log_path) as log:
        create_tiny_clip(Path(clip_path), seed=seed)
        create_tiny_sam(Path(sam_path), seed=seed)
        log(f"tiny test models (random weights, for tests and the demo only): {clip_path}, {sam_path}")


def _job_plan(smk: Any, stage: str):
    """The job's dataset plan, read from the dataset index (never rebuilt here, only this dataset's header
    and the rows the job asks for), and a check that its key agrees with the one Snakemake scheduled."""
    from fmwsss.pipeline.config import Config
    from fmwsss.pipeline.plan import Plan

    ds = Plan(Config(smk.config), refresh=False).get(smk.wildcards.dataset)
    if ds.keys[stage] != smk.wildcards.key:
        raise RuntimeError(
            f"{stage}: key computed inside the job ({ds.keys[stage]}) differs from the scheduled "
            f"{smk.wildcards.key}: config.yaml changed while the workflow was running?"
        )
    return ds


def _drop_partial(partial: str) -> None:
    """A finished training stage's checkpoints are resumable state only: remove them with the entry done."""
    import shutil

    shutil.rmtree(partial, ignore_errors=True)


def _store_dir(path: str) -> Path:
    """The store entry folder of an upstream product (its spec.json or product file)."""
    return Path(path).parent


def prompts_train(smk: Any, stage: str) -> None:
    """Learn classification or segmentation prompts (resumable from checkpoints in the .partial folder)."""
    from fmwsss.pipeline.stage_settings import prompt_config, prompt_names, train_config
    from fmwsss.prompts.learners import save_zero_shot_marker
    from fmwsss.prompts.train import train_prompts

    section_name = "prompts_cls" if stage == "prompts_cls_train" else "prompts_seg"
    with job_log(_log_path(smk)) as log, _job_device(smk, log) as device:
        _set_threads(smk.threads)
        ds = _job_plan(smk, stage)
        section = ds.settings[section_name]
        fg, bg = prompt_names(ds.settings, ds.dataset.class_names)
        out = Path(smk.output.prompts)
        if section["mode"] == "zero_shot":
            log(f"{stage}: zero_shot mode: CLIP-ES hand-written prompts, nothing to train")
            save_zero_shot_marker(out, fg, bg)
        else:
            runtime = _runtime(smk)
            cfg = train_config(section, runtime, section_name)
            if cfg.task == "cls":
                items = [(i, ds.dataset.image_path(i), ds.dataset.tags(i)) for i in ds.dataset.ids]
            else:
                seeds = _store_dir(smk.input.seeds_coarse)
                items = [(i, ds.dataset.image_path(i), seeds / f"{i}.png", ds.dataset.tags(i))
                         for i in ds.dataset.ids]
                require_intact(item[2] for item in items)
            log(f"{stage}: {len(items)} images, {cfg.max_iter} iterations, batch {cfg.batch_size}")
            train_prompts(
                items, smk.input.weights, prompt_config(section, fg, bg), cfg, smk.params.partial, out,
                device=device, log=log,
            )
        write_spec(out.parent, smk.wildcards.key, smk.params.spec, smk.wildcards.dataset)
        _drop_partial(smk.params.partial)


def _prompts_source(path: str):
    """A trained prompt file, or the zero-shot prompts its stage's marker names."""
    from fmwsss.cams.dump import ZeroShot
    from fmwsss.prompts.learners import zero_shot_marker

    marker = zero_shot_marker(path)
    return ZeroShot(*marker) if marker else path


def cams_dump(smk: Any, stage: str) -> None:
    """One shard of CAMs: Softmax-GradCAM with the learned prompts, then CAA (resumable per image)."""
    from fmwsss.cams.dump import dump_cams
    from fmwsss.pipeline.stage_settings import caa_settings

    prompts_stage, section = (
        ("prompts_cls_train", "cams_coarse") if stage == "cams_coarse_dump" else ("prompts_seg_train", "cams_fine")
    )
    with job_log(_log_path(smk)) as log, _job_device(smk, log) as device:
        _set_threads(smk.threads)
        ds = _job_plan(smk, stage)
        final = Path(smk.output.shard)
        clean_stale_temps(final.parent)
        caa = ds.settings[section]["caa"]
        require_intact([getattr(smk.input, prompts_stage)], full=True)  # a small file: hashed on every read
        items = [(i, ds.dataset.image_path(i), ds.dataset.tags(i)) for i in ds.shard_ids(final.stem)]
        log(f"{stage}: shard {final.stem} of {ds.name}, {len(items)} images")
        dump_cams(
            items, smk.input.weights, _prompts_source(getattr(smk.input, prompts_stage)), caa_settings(caa),
            Path(smk.params.partial) / final.name, final, device=device,
            log=log, stage=stage, n_attn_layers=caa["last_n_layers"],
        )


def tagged_maps(maps: "np.ndarray", classes: "np.ndarray", tags: Sequence[int]) -> tuple["np.ndarray", "np.ndarray"]:
    """The rows of ``maps`` (P, h, w) whose class is among the image's ``tags``, and those classes.

    The seeds may paint only tagged classes: a CAM shard holding another class's map (written by other code,
    or for other tags) must not put that class into the pseudo labels.
    """
    import numpy as np

    keep = np.isin(classes, np.asarray(tags, dtype=np.int64))
    return maps[keep], classes[keep]


def seeds_shard(smk: Any, stage: str) -> None:
    """One shard of seeds: SAMS (or the argmax baseline) on the SAM masks and the refined CAMs."""
    from fmwsss.cams.shards import CamShardReader
    from fmwsss.io.shards import GroupShardWriter
    from fmwsss.hooks import maybe_stall
    from fmwsss.sam.shards import SamShardReader
    from fmwsss.seeding import seed_image

    cams_stage = "cams_coarse_dump" if stage == "seeds_coarse" else "cams_fine_dump"
    with job_log(_log_path(smk)) as log, _job_device(smk, log) as device:
        _set_threads(smk.threads)
        ds = _job_plan(smk, stage)
        section = ds.settings[stage]
        final = Path(smk.output.shard)
        clean_stale_temps(final.parent)
        ids = ds.shard_ids(final.stem)
        sam_path = _store_dir(smk.input.sam_masks) / final.name
        cams_path = _store_dir(getattr(smk.input, cams_stage)) / final.name
        require_intact([sam_path, cams_path])
        sam, cams = SamShardReader(sam_path), CamShardReader(cams_path)
        with GroupShardWriter(Path(smk.params.partial) / final.name, final, section) as writer:
            done = writer.done
            for n, image_id in enumerate(ids, start=1):
                if image_id in done:
                    continue
                tic = time.perf_counter()
                cam = cams.read(image_id)
                size = (cam.height, cam.width)
                maps, classes = tagged_maps(cam.cam_caa, cam.classes, ds.dataset.tags(image_id))
                masks = sam.read(image_id) if section["method"] == "sams" else None
                labels = seed_image(section, maps, classes, size, masks, device=device)
                writer.write(image_id, {"labels": labels}, {}, compression="gzip")
                log(f"{stage}: image {n}/{len(ids)} {image_id} -> classes {sorted(set(labels.ravel().tolist()) - {0})} "
                    f"({time.perf_counter() - tic:.2f} s)")
                maybe_stall(stage, len(writer.done))
            writer.finish(ids)
        log(f"{stage}: wrote {final}")


def _split_name(dataset) -> str:
    return next((name for name, ids in dataset.splits.items() if list(ids) == list(dataset.ids)), "all ids")


def _evaluate(dataset, predictions, log, scores_path: Path) -> dict:
    """Score (id, label map) pairs against the dataset's ground truth where it exists; metrics.json content.

    With ground truth, ``scores_path`` gets the confusion matrix and each image's IoU (for the HTML report).
    """
    from fmwsss.data.palette import load_label_png
    from fmwsss.eval import Accumulator, format_table, metrics_to_json, scores_to_json
    from fmwsss.io.atomic import atomic_write_json

    names = ("background", *dataset.class_names)
    acc, scored = Accumulator(len(names)), 0
    for image_id, labels in predictions:
        gt = dataset.gt_path(image_id)
        if gt is not None and Path(gt).is_file():
            acc.add(labels, load_label_png(gt), image_id)
            scored += 1
    split = f"{dataset.name}: {_split_name(dataset)} ({scored} images with ground truth)"
    if not scored:
        log(f"no ground truth for {dataset.name}: nothing scored")
        return {"split": split, "ground_truth": False}
    metrics = acc.metrics()
    log("\n" + format_table(metrics, names, split))
    atomic_write_json(scores_path, scores_to_json(acc, names, split))
    return {"ground_truth": True, **metrics_to_json(metrics, names, split)}


def seeds_gather(smk: Any, stage: str) -> None:
    """Gather a seed stage's shards into VOC-palette PNGs + metrics.json; spec.json last marks it done."""
    from fmwsss.data.palette import palette_for, save_label_png
    from fmwsss.io.atomic import atomic_write_json
    from fmwsss.io.shards import open_complete

    with job_log(_log_path(smk)) as log:
        ds = _job_plan(smk, stage)
        store = Path(smk.output.spec).parent
        palette = palette_for(ds.dataset.num_classes)

        def predictions():
            for shard in smk.input.shards:
                with open_complete(shard) as fh:
                    for image_id in fh:
                        labels = fh[image_id]["labels"][()]
                        save_label_png(store / f"{image_id}.png", labels, palette)
                        yield image_id, labels

        metrics = _evaluate(ds.dataset, predictions(), log, store / "scores.json")
        atomic_write_json(store / "metrics.json", {"stage": stage, **metrics})
        write_spec(store, smk.wildcards.key, smk.params.spec, smk.wildcards.dataset)
        log(f"{stage}: {len(ds.dataset.ids)} PNGs and metrics.json in {store}")


def cams_gather(smk: Any, stage: str) -> None:
    """Check a CAM stage's shards and score its CAMs (argmax, fixed background power) where GT exists."""
    from fmwsss.cams.shards import CamShardReader
    from fmwsss.io.atomic import atomic_write_json
    from fmwsss.seeding import argmax_seed

    with job_log(_log_path(smk)) as log:
        ds = _job_plan(smk, stage)
        power = ds.settings["eval"]["cam_bg_power"]
        store = Path(smk.output.spec).parent
        report = {"stage": stage, "cam_bg_power": power}
        for kind in ("cam_raw", "cam_caa"):

            def predictions(kind=kind):
                for shard in smk.input.shards:
                    with CamShardReader(shard) as reader:
                        for image_id in reader.ids():
                            cam = reader.read(image_id)
                            size = (cam.height, cam.width)
                            yield image_id, argmax_seed(getattr(cam, kind), cam.classes, size, power)

            log(f"{stage}: {kind} scored by argmax with background power {power}")
            report[kind] = _evaluate(ds.dataset, predictions(), log, store / f"scores_{kind}.json")
        atomic_write_json(store / "metrics.json", report)
        write_spec(store, smk.wildcards.key, smk.params.spec, smk.wildcards.dataset)


def _segmenter_splits(dataset) -> tuple[list[str], list[str]]:
    """Train on the pseudo labels of every id outside the held-out val split; evaluate on val."""
    val = list(dataset.splits.get("val", []))
    held_out = set(val)
    return [i for i in dataset.ids if i not in held_out], val


def deeplab_train(smk: Any) -> None:
    """Stage II: train DeepLab on the fine seeds of the training ids (resumable from checkpoints)."""
    from fmwsss.segmentation import train_segmenter

    with job_log(_log_path(smk)) as log, _job_device(smk, log) as device:
        _set_threads(smk.threads)
        ds = _job_plan(smk, "deeplab_train")
        seeds = _store_dir(smk.input.seeds_fine)
        train_ids, _ = _segmenter_splits(ds.dataset)
        items = [(i, ds.dataset.image_path(i), seeds / f"{i}.png") for i in train_ids]
        require_intact(item[2] for item in items)
        runtime = _runtime(smk)
        log(f"deeplab_train: {len(items)} images with pseudo labels from {seeds}")
        out = Path(smk.output.model)
        train_segmenter(
            items, ds.settings["segmenter"], ds.dataset.num_classes + 1, out, smk.params.partial,
            device=device, log=log, micro_batch=runtime["micro_batch"],
            checkpoint_every=runtime["checkpoint_every"], num_workers=runtime["num_workers"],
        )
        write_spec(out.parent, smk.wildcards.key, smk.params.spec, smk.wildcards.dataset)
        _drop_partial(smk.params.partial)


def deeplab_eval(smk: Any) -> None:
    """Stage II: predict the held-out ids single-scale and multi-scale + flip; mIoU where GT exists."""
    from fmwsss.io.atomic import atomic_write_json
    from fmwsss.segmentation import evaluate_segmenter

    with job_log(_log_path(smk)) as log, _job_device(smk, log) as device:
        _set_threads(smk.threads)
        ds = _job_plan(smk, "deeplab_eval")
        store = Path(smk.output.metrics).parent
        _, val_ids = _segmenter_splits(ds.dataset)
        if not val_ids:
            log(f"deeplab_eval: dataset {ds.name} has no 'val' split: nothing to evaluate")
        items = [(i, ds.dataset.image_path(i), ds.dataset.gt_path(i)) for i in val_ids]
        require_intact([smk.input.deeplab_train], full=True)  # one model file: hashed on every read
        result = evaluate_segmenter(
            smk.input.deeplab_train, items, ds.dataset.num_classes + 1, store,
            device, ds.settings["segmenter_eval"]["ms_scales"], log=log,
            split_name=f"{ds.name}: val", class_names=("background", *ds.dataset.class_names),
        )
        link = store / "model.pt"
        link.unlink(missing_ok=True)
        os.symlink(os.path.relpath(smk.input.deeplab_train, store), link)
        atomic_write_json(store / "metrics.json", {"stage": "deeplab_eval", **result})
        write_spec(store, smk.wildcards.key, smk.params.spec, smk.wildcards.dataset)
