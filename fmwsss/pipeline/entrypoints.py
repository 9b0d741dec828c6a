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

from fmwsss.io import startup, timing
from fmwsss.pipeline.integrity import require_intact
from fmwsss.pipeline.store import clean_stale_temps, link_scores, make_alias, write_spec

if TYPE_CHECKING:
    import numpy as np


@contextlib.contextmanager
def job_log(path: str | None) -> Iterator[Callable[[str], None]]:
    """Send stderr to the rule's log file (fresh per attempt) and yield a line logger.

    A failure ends the log with its traceback and one ``error:`` line, and writes that line to the job's own
    stderr too (the terminal): Snakemake's error summary shows only ``message: None`` and the log path."""
    if path is None:
        yield lambda msg: print(msg, file=sys.stderr, flush=True)
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as fh:
        old = sys.stderr
        sys.stderr = fh
        try:
            yield lambda msg: print(f"{time.strftime('%H:%M:%S')} {msg}", file=fh, flush=True)
        except BaseException as exc:
            import traceback

            traceback.print_exc(file=fh)
            line = f"error: {type(exc).__name__}: {exc}".replace("\n", " ")
            print(f"{time.strftime('%H:%M:%S')} {line}", file=fh, flush=True)
            print(f"fmwsss {line} (log: {path})", file=old, flush=True)
            raise
        finally:
            sys.stderr = old


@contextlib.contextmanager
def script_job(smk: Any, uses_torch: bool = True) -> Iterator[Callable[[str], None]]:
    """A Snakemake script job: its log (``job_log``), its start-up record (:mod:`fmwsss.io.startup`) and its
    timing record (:mod:`fmwsss.io.timing`, which a compute job writes when its work is done).

    ``import torch`` is timed as a phase of its own (jobs that use it import it first), so the stage's
    imports, index read, weight check and model load are seen apart from it; the record is logged at the
    job's first image or iteration, or when the job ends without computing any."""
    with job_log(_log_path(smk)) as log:
        startup.begin(log)
        timing.begin()
        try:
            if uses_torch:
                import torch  # noqa: F401

                startup.mark("torch")
            yield log
        finally:
            startup.end()
            timing.end()


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(threads)))


def _job_device(smk: Any, log: Callable[[str], None]) -> contextlib.AbstractContextManager:
    """The job's torch device from ``runtime.device``, held until the job ends: on a workstation with N GPUs,
    N concurrent jobs get N different GPUs (imported lazily: the Snakefile imports this module)."""
    from fmwsss.devices import job_device

    return job_device(_runtime(smk)["device"], log)


def _require_decodable(items: Sequence[tuple], where: str, threads: int, log: Callable[[str], None]) -> None:
    """Decode every image of the job (``items``: (id, path, ...)) before any model loads: all unusable files
    in one error. Only in jobs that can be the first to decode an image (SAM and CAM shards, class prompts,
    the val split): the others read images those jobs already decoded."""
    from fmwsss.data.images import require_decodable

    tic = time.monotonic()
    require_decodable([item[1] for item in items], where, threads)
    startup.mark("image check")
    log(f"{where}: {len(items)} images decoded in {time.monotonic() - tic:.1f} s, all usable")


def _log_path(smk: Any) -> str | None:
    return smk.log[0] if len(smk.log) else None


def _runtime(smk: Any) -> dict:
    """The unhashed runtime knobs, read from the job's config (never params: they would trigger reruns)."""
    from fmwsss.pipeline.config import Config

    return Config(smk.config).runtime


def sam_masks(smk: Any) -> None:
    """One shard of SAM masks: resumable per image in the stage's .partial directory."""
    with script_job(smk) as log, _job_device(smk, log) as device:
        from fmwsss.models.weights import get_weight
        from fmwsss.sam.build import SamSpeed
        from fmwsss.sam.run import run_sam_shard

        startup.mark("imports")
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
        reused, keys = _reusable(ds, "sam_masks", final, partial_dir / final.name, log)
        log(f"sam_masks: shard {final.stem} of {ds.name}, {len(items)} images, weights {p.weights}")
        _require_decodable(items, f"sam_masks {final.stem} of {ds.name}", smk.threads, log)
        run_sam_shard(
            items=items,
            model_path=_verified_weights(smk),
            arch=weight.arch,
            settings=p.spec["settings"]["sam"],
            partial_path=partial_dir / final.name,
            final_path=final,
            device=device,
            speed=SamSpeed.from_runtime(runtime),
            num_workers=runtime["num_workers"],
            log=log,
            reused=reused,
            image_keys=keys,
        )
        timing.write(final.parent, "sam_masks", final.stem, "image", device, smk.threads, log)


def _reusable(ds, stage: str, final: Path, partial: Path, log: Callable[[str], None]
              ) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """The shard's per-image keys (recorded on each group it computes) and its images whose identical result
    (same per-image key, checked against the key the holder's group records) a finished entry of the stage
    already holds: image id -> (file relative to the shard's folder, group), for the writer to link."""
    from fmwsss.pipeline.reuse import find_reusable, image_keys, own_links

    positions = ds.shards[final.stem]
    keys = image_keys(ds, stage, positions.start, positions.stop)
    prefix = f"{stage}: shard {final.stem}: "
    if (final.parent / "spec.json").is_file():
        # A repair inside a finished entry (fmwsss repair). Its partial file, where there is one, holds what the
        # repair keeps (it dropped the links into damaged holders: a damage only --verify sees, so the holder
        # checks here would pass them): the rest is computed. Else link only what the entry linked before, to
        # the same holders (a holder never links on, so links never chain); compute what it held.
        if partial.is_file():
            holders = {}
        else:
            holders = own_links(final.parent, keys, keys, lambda msg: log(prefix + msg))
        log(f"{prefix}repairing a finished entry: {len(holders)} of {len(keys)} images linked as before"
            f"{' (the partial file keeps what stays)' if partial.is_file() else ''}, the others computed here")
    else:
        holders = find_reusable(final.parent.parent, final.parent.name, keys, lambda msg: log(prefix + msg))
        log(f"{prefix}{len(holders)} of {len(keys)} images found in finished entries")
    startup.mark("reuse lookup")
    return {image_id: holder.link_target() for image_id, holder in holders.items()}, keys


def finish_entry(ds, stage: str, shards: Sequence[str], store: Path, key: str, spec: dict,
                 log: Callable[[str], None]) -> None:
    """Finish a sharded stage's entry: check its shards, write its manifest (per-image key -> holder), the set
    link whole-set stages read, and spec.json last (with the entries it links into, ``refs``, for gc).

    spec.json is the entry's completion mark for Snakemake and ``fmwsss status`` alike, so everything else is
    in place before it: a finalize killed at any point either left no spec.json (the job reruns) or a whole
    entry (what Snakemake's ``--cleanup-metadata`` hint then accepts). A set link naming an entry without
    spec.json counts as absent (``point_set_link``, ``Plan.set_product``)."""
    from fmwsss.io.shards import require_complete
    from fmwsss.pipeline.plan import Plan
    from fmwsss.pipeline.reuse import manifest_rows, point_set_link, write_manifest
    from fmwsss.pipeline.store import drop_empty_partial

    from fmwsss.hooks import maybe_stall

    for shard in shards:
        require_complete(shard)
    clean_stale_temps(store)  # a killed finalize's temporary manifest or spec.json
    keys = image_keys_all(ds, stage)
    refs = write_manifest(store, manifest_rows(key, shards, keys))
    maybe_stall(f"{stage}_finalize", 1)
    drop_empty_partial(store)
    point_set_link(Path(Plan.set_link_path(store.parent, spec["set_key"])), store)
    maybe_stall(f"{stage}_finalize", 2)
    write_spec(store, key, spec, ds.name, refs=sorted(refs))
    maybe_stall(f"{stage}_finalize", 3)
    log(f"{stage}: {len(shards)} shards complete, {len(keys)} images in the manifest, links into "
        f"{len(refs)} other entries; wrote {store / 'spec.json'}")


def image_keys_all(ds, stage: str) -> dict[str, str]:
    from fmwsss.pipeline.reuse import image_keys

    return image_keys(ds, stage, 0, ds.dataset.num_ids)


def finalize_job(plan: Any, shards: list[str], spec_path: str, spec: dict, wildcards: Any, log_path: str) -> None:
    """Finish a sharded stage whose finalize does nothing else (sam_masks): see ``finish_entry``."""
    with job_log(log_path) as log:
        ds = plan.get(wildcards.dataset)
        finish_entry(ds, spec["stage"], shards, Path(spec_path).parent, wildcards.key, spec, log)


def alias_job(target: str, link: str, log_path: str, scores: str = "") -> None:
    """Re-point results/{dataset}/{alias} at the current store entry, and, for a scored stage, that entry's
    metrics.json / scores*.json links at its current score entry (``scores``, relative to the entry)."""
    with job_log(log_path) as log:
        make_alias(target, link)
        log(f"{link} -> {target}")
        if scores:
            linked = link_scores(Path(link).parent / target, scores)
            log(f"{', '.join(linked)} -> {scores}")


def fetch_weights_job(name: str, dest: str, log_path: str) -> None:
    """Download one registered weight file, verified by size and sha256, written atomically."""
    from fmwsss.models.download import fetch_weight

    with job_log(log_path) as log:
        path = fetch_weight(name, dest_dir=Path(dest).parent)
        log(f"weights {name}: {path} verified")


def verify_weights_job(name: str, path: str, log_path: str) -> None:
    """Hash one weight file against the registry once and write its sidecar, which GPU jobs require."""
    from fmwsss.models.weights import get_weight, verify_local

    with job_log(log_path) as log:
        log(f"weights {name}: {path} verified, sha256 {verify_local(path, get_weight(name))}")


def _verified_weights(smk: Any) -> Path:
    """The job's weight file, refused unless its sidecar (a declared input) still describes it (real
    checkpoints are not re-hashed here; the verify rule hashed them once)."""
    from fmwsss.models.weights import require_verified

    path = require_verified(smk.input.weights)
    startup.mark("weight check")
    return path


def make_tiny_job(clip_path: str, sam_path: str, swin_path: str, seed: int, log_path: str) -> None:
    """Create the tiny random-weight test models (an explicit choice of `models: tiny_*` or arch
    `tiny_mask2former`, never a fallback); their sidecars record the sha256 they were made with, the
    reference jobs check them against."""
    from fmwsss.models.tiny_models import create_tiny_model

    with job_log(log_path) as log:
        for name, path in (("tiny_clip", clip_path), ("tiny_sam", sam_path), ("tiny_swin", swin_path)):
            create_tiny_model(name, path, seed)
        log(f"tiny test models (random weights, for tests and the demo only): {clip_path}, {sam_path}, {swin_path}")


def make_random_job(name: str, path: str, seed: int, log_path: str) -> None:
    """Create one full-size random-weight test model (an explicit choice of `models: random_*`, never a
    fallback; SAM ViT-H: ~25 s of CPU, 2.4 GiB). Its sidecar records the sha256 it was made with; the verify
    rule checks the file against it once, after Snakemake has touched it, and jobs trust size and mtime then."""
    from fmwsss.models.random_models import create_random_model

    with job_log(log_path) as log:
        create_random_model(name, path, seed, log)


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
    startup.mark("index")
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
    section_name = "prompts_cls" if stage == "prompts_cls_train" else "prompts_seg"
    with script_job(smk) as log, _job_device(smk, log) as device:
        from fmwsss.pipeline.stage_settings import prompt_config, prompt_names, train_config
        from fmwsss.prompts.learners import save_zero_shot_marker
        from fmwsss.prompts.train import train_prompts

        startup.mark("imports")
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
                _require_decodable(items, f"{stage} of {ds.name}", smk.threads, log)
            else:
                seeds = _store_dir(smk.input.seeds_coarse)
                items = [(i, ds.dataset.image_path(i), seeds / f"{i}.png", ds.dataset.tags(i))
                         for i in ds.dataset.ids]
                require_intact(item[2] for item in items)
            log(f"{stage}: {len(items)} images, {cfg.max_iter} iterations, batch {cfg.batch_size}")
            train_prompts(
                items, _verified_weights(smk), prompt_config(section, fg, bg), cfg, smk.params.partial, out,
                device=device, log=log,
            )
        timing.write(out.parent, stage, timing.WHOLE_SET_JOB, "iteration", device, smk.threads, log)
        write_spec(out.parent, smk.wildcards.key, smk.params.spec, smk.wildcards.dataset)
        _drop_partial(smk.params.partial)


def cams_dump(smk: Any, stage: str) -> None:
    """One shard of CAMs: Softmax-GradCAM with the learned prompts, then CAA (resumable per image)."""
    prompts_stage, section = (
        ("prompts_cls_train", "cams_coarse") if stage == "cams_coarse_dump" else ("prompts_seg_train", "cams_fine")
    )
    with script_job(smk) as log, _job_device(smk, log) as device:
        from fmwsss.cams.dump import dump_cams, prompts_source
        from fmwsss.pipeline.stage_settings import caa_settings

        startup.mark("imports")
        _set_threads(smk.threads)
        ds = _job_plan(smk, stage)
        final = Path(smk.output.shard)
        clean_stale_temps(final.parent)
        caa = ds.settings[section]["caa"]
        require_intact([getattr(smk.input, prompts_stage)], full=True)  # a small file: hashed on every read
        items = [(i, ds.dataset.image_path(i), ds.dataset.tags(i)) for i in ds.shard_ids(final.stem)]
        reused, keys = _reusable(ds, stage, final, Path(smk.params.partial) / final.name, log)
        log(f"{stage}: shard {final.stem} of {ds.name}, {len(items)} images")
        _require_decodable(items, f"{stage} {final.stem} of {ds.name}", smk.threads, log)
        dump_cams(
            items, _verified_weights(smk), prompts_source(getattr(smk.input, prompts_stage)), caa_settings(caa),
            Path(smk.params.partial) / final.name, final, device=device,
            log=log, stage=stage, n_attn_layers=caa["last_n_layers"], reused=reused, image_keys=keys,
        )
        timing.write(final.parent, stage, final.stem, "image", device, smk.threads, log)


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
    cams_stage = "cams_coarse_dump" if stage == "seeds_coarse" else "cams_fine_dump"
    with script_job(smk) as log, _job_device(smk, log) as device:
        from fmwsss.cams.shards import CamShardReader
        from fmwsss.io.progress import Progress
        from fmwsss.io.shards import GroupShardWriter, link_reused
        from fmwsss.hooks import maybe_stall
        from fmwsss.sam.shards import SamShardReader
        from fmwsss.seeding import seed_image

        startup.mark("imports")
        _set_threads(smk.threads)
        ds = _job_plan(smk, stage)
        section = ds.settings[stage]
        final = Path(smk.output.shard)
        clean_stale_temps(final.parent)
        ids = ds.shard_ids(final.stem)
        reused, keys = _reusable(ds, stage, final, Path(smk.params.partial) / final.name, log)
        with GroupShardWriter(Path(smk.params.partial) / final.name, final, section, keys) as writer:
            n_reused = link_reused(writer, reused)
            done = writer.done
            todo = [i for i in ids if i not in done]
            if todo:
                sam_path = _store_dir(smk.input.sam_masks) / final.name
                cams_path = _store_dir(getattr(smk.input, cams_stage)) / final.name
                require_intact([sam_path, cams_path])
                sam, cams = SamShardReader(sam_path), CamShardReader(cams_path)
            progress = Progress(log, f"{stage}: image", len(ids), done=len(done), every=1, unit="image")
            for image_id in todo:
                tic = time.perf_counter()
                cam = cams.read(image_id)
                size = (cam.height, cam.width)
                maps, classes = tagged_maps(cam.cam_caa, cam.classes, ds.dataset.tags(image_id))
                masks = sam.read(image_id) if section["method"] == "sams" else None
                labels = seed_image(section, maps, classes, size, masks, device=device)
                writer.write(image_id, {"labels": labels}, {}, compression="gzip")
                progress.advance(detail=f"{image_id} -> classes {sorted(set(labels.ravel().tolist()) - {0})} "
                                        f"({time.perf_counter() - tic:.2f} s)")
                maybe_stall(stage, len(writer.done))
            log(f"{stage}: {final.name}: {len(ids)} images: reused {n_reused}, computed {len(todo)}")
            writer.finish(ids)
        log(f"{stage}: wrote {final}")
        timing.write(final.parent, stage, final.stem, "image", device, smk.threads, log)


def _link_reused_png(fh: Any, image_id: str, store: Path, png: Path, records: dict[Path, dict | None]) -> bool:
    """Hard-link the PNG of a reused seed from the entry that computed it (stored once, its mtime kept);
    False when the image was computed here, or the holder's PNG is gone or differs from the size and sha256
    its entry recorded (then the caller writes it from the labels). ``records``: holder entry -> its file
    record, read once per holder."""
    from fmwsss.io.shards import external_target
    from fmwsss.pipeline.integrity import check_files, readable_record

    target = external_target(fh, image_id)
    if target is None:
        return False
    holder = store / Path(target[0]).parent
    if holder not in records:
        records[holder] = readable_record(holder)
    name, record = f"{target[1]}.png", records[holder]
    if record is None or name not in record or check_files(holder, record, full=True, names=[name]):
        return False
    png.unlink(missing_ok=True)
    os.link(holder / name, png)
    return True


def seeds_gather(smk: Any, stage: str) -> None:
    """Gather a seed stage's shards into VOC-palette PNGs; spec.json last marks it done (scoring: :func:`score`)."""
    with script_job(smk, uses_torch=False) as log:
        from fmwsss.data.palette import palette_for, save_label_png
        from fmwsss.io.shards import open_complete, read_group

        startup.mark("imports")
        ds = _job_plan(smk, stage)
        store = Path(smk.output.spec).parent
        palette = palette_for(ds.dataset.num_classes)
        records: dict[Path, dict | None] = {}
        for shard in smk.input.shards:
            with open_complete(shard) as fh:
                for image_id in fh:
                    png = store / f"{image_id}.png"
                    if not _link_reused_png(fh, image_id, store, png, records):
                        save_label_png(png, read_group(fh, image_id)["labels"][()], palette)
        finish_entry(ds, stage, smk.input.shards, store, smk.wildcards.key, smk.params.spec, log)
        log(f"{stage}: {len(ds.dataset.ids)} PNGs in {store}")


def score(smk: Any) -> None:
    """Score the current entry of a CAM or seed stage against the ground truth into its score entry:
    metrics.json (always; ``ground_truth: false`` without any), scores*.json where ground truth exists, then
    spec.json; the scored entry gets relative links to them (re-pointed by the alias job when scores change)."""
    stage, key, name = smk.wildcards.scored, smk.wildcards.key, smk.wildcards.dataset
    with script_job(smk, uses_torch=False) as log:
        from fmwsss.io.atomic import atomic_write_json
        from fmwsss.pipeline.config import Config
        from fmwsss.pipeline.plan import Plan
        from fmwsss.pipeline.scoring import score_cams, score_seeds, stage_test_models

        startup.mark("imports")
        plan = Plan(Config(smk.config), refresh=False)
        plan.check_score_key(name, stage, key)
        ds = plan.get(name)
        startup.mark("index")
        out = Path(smk.output.spec).parent
        out.mkdir(parents=True, exist_ok=True)
        entry = _store_dir(smk.input.entry)
        if stage.startswith("cams_"):
            shards = plan.shard_paths(name, stage)
            metrics = score_cams(ds.dataset, stage, shards, ds.settings["eval"]["cam_bg_power"], out, log)
        else:
            metrics = score_seeds(ds.dataset, stage, entry, out, log)
        atomic_write_json(out / "metrics.json", {**metrics, "test_models": stage_test_models(ds.settings, stage)})
        timing.write(out, f"score_{stage}", timing.WHOLE_SET_JOB, "image", "cpu", smk.threads, log)
        write_spec(out, key, smk.params.spec, name)
        linked = link_scores(entry, plan.score_link(name, stage))
        log(f"score_{stage}: wrote {out}; linked {', '.join(linked)} into {entry}")


def _segmenter_splits(dataset) -> tuple[list[str], list[str]]:
    """Train on the pseudo labels of every id outside the held-out val split; evaluate on val."""
    val = list(dataset.splits.get("val", []))
    held_out = set(val)
    return [i for i in dataset.ids if i not in held_out], val


def deeplab_train(smk: Any) -> None:
    """Stage II: train the segmenter on the fine seeds of the training ids (resumable from checkpoints), on
    ``runtime.segmenter_gpus`` devices data-parallel (one process writes the checkpoint, logs and model)."""
    from fmwsss.devices import job_devices

    runtime = _runtime(smk)
    with script_job(smk) as log, job_devices(runtime["device"], runtime["segmenter_gpus"], log) as devices:
        from fmwsss.models.weights import require_verified
        from fmwsss.segmentation import train_segmenter

        startup.mark("imports")
        _set_threads(smk.threads)
        ds = _job_plan(smk, "deeplab_train")
        seeds = _store_dir(smk.input.seeds_fine)
        train_ids, _ = _segmenter_splits(ds.dataset)
        items = [(i, ds.dataset.image_path(i), seeds / f"{i}.png") for i in train_ids]
        require_intact(item[2] for item in items)
        backbone = require_verified(smk.input.backbone) if "backbone" in smk.input.keys() else None
        startup.mark("weight check")
        segmenter = ds.settings["segmenter"]
        log(f"deeplab_train: {segmenter['arch']} on {len(items)} images with pseudo labels from {seeds}"
            + (f"; backbone {backbone}" if backbone else ""))
        out = Path(smk.output.model)
        train_segmenter(
            items, segmenter, ds.dataset.num_classes + 1, out, smk.params.partial,
            device=devices[0], log=log, micro_batch=runtime["micro_batch"],
            checkpoint_every=runtime["checkpoint_every"], num_workers=runtime["num_workers"],
            processes=len(devices), devices=devices, backbone_path=backbone,
        )
        timing.write(out.parent, "deeplab_train", timing.WHOLE_SET_JOB, "iteration", devices[0], smk.threads, log)
        write_spec(out.parent, smk.wildcards.key, smk.params.spec, smk.wildcards.dataset)
        _drop_partial(smk.params.partial)


def deeplab_eval(smk: Any) -> None:
    """Stage II: predict the held-out ids single-scale and multi-scale + flip; mIoU where GT exists."""
    with script_job(smk) as log, _job_device(smk, log) as device:
        from fmwsss.io.atomic import atomic_write_json
        from fmwsss.pipeline.scoring import stage_test_models
        from fmwsss.segmentation import evaluate_segmenter

        startup.mark("imports")
        _set_threads(smk.threads)
        ds = _job_plan(smk, "deeplab_eval")
        store = Path(smk.output.metrics).parent
        _, val_ids = _segmenter_splits(ds.dataset)
        if not val_ids:
            log(f"deeplab_eval: dataset {ds.name} has no 'val' split: nothing to evaluate")
        items = [(i, ds.dataset.image_path(i), ds.dataset.gt_path(i)) for i in val_ids]
        _require_decodable(items, f"deeplab_eval of {ds.name}", smk.threads, log)
        require_intact([smk.input.deeplab_train], full=True)  # one model file: hashed on every read
        evaluation = ds.settings["segmenter_eval"]
        result = evaluate_segmenter(
            smk.input.deeplab_train, items, ds.dataset.num_classes + 1, store,
            device, evaluation["ms_scales"], log=log,
            split_name=f"{ds.name}: val", class_names=("background", *ds.dataset.class_names),
            inference=evaluation["inference"],
        )
        link = store / "model.pt"
        link.unlink(missing_ok=True)
        os.symlink(os.path.relpath(smk.input.deeplab_train, store), link)
        test_models = stage_test_models(ds.settings, "deeplab_eval")
        atomic_write_json(store / "metrics.json", {"stage": "deeplab_eval", "test_models": test_models, **result})
        timing.write(store, "deeplab_eval", timing.WHOLE_SET_JOB, "image", device, smk.threads, log)
        write_spec(store, smk.wildcards.key, smk.params.spec, smk.wildcards.dataset)
