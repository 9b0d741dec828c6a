"""``fmwsss seed IMAGE --tags cat,person -o out.png``: the fine chain for one image, without Snakemake.

``register(subparsers)`` adds the subcommand to the top-level ``fmwsss`` parser and sets
``args.func(args) -> int``.
Errors are raised (missing weights or files, unknown tags, bad config) for ``fmwsss.cli.main.main`` to report.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ZERO_SHOT_WARNING = (
    "fmwsss seed: warning: no trained prompts given (--prompts or --run): using zero-shot CLIP-ES prompts, "
    "which give coarser seeds than the method's trained segmentation prompts"
)


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``seed`` subcommand to ``subparsers``; return its parser."""
    parser = subparsers.add_parser(
        "seed", help="pseudo label for one tagged image (SAM masks -> CAMs -> CAA -> SAMS), no Snakemake",
        description=(
            "Run the fine chain on one image with a dataset's settings: SAM masks, CAMs from trained segmentation "
            "prompts (--prompts or --run; zero-shot CLIP-ES prompts without either), fine CAA, SAMS. Writes a "
            "VOC-palette PNG whose values are the class ids (0 = background)."
        ),
    )
    parser.add_argument("image", type=Path, help="the image file")
    parser.add_argument("--tags", required=True,
                        help="comma-separated class names present in the image, e.g. cat,person")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="seed PNG to write (mode P, values 0..C)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--prompts", type=Path, help="a trained segmentation prompts.pt")
    source.add_argument("--run", type=Path,
                        help="a pipeline results folder (results/<dataset>): use its current segmentation prompts")
    parser.add_argument("--config", default="config.yaml", help="config file (default: %(default)s)")
    parser.add_argument("--dataset", default=None,
                        help="dataset whose settings and classes to use (default: the --run folder's name, else demo)")
    parser.add_argument("--overlay", type=Path,
                        help="also write the image blended with the coloured labels, with a legend below (PNG)")
    parser.add_argument("--device", default=None,
                        help="torch device; auto = cuda when present (default: the config's runtime.device, as the "
                             "pipeline's jobs use)")
    parser.set_defaults(func=run_seed)

    show = subparsers.add_parser(
        "overlay", help="blend a label PNG (a seed or a prediction) over its image, for looking at results",
        description=(
            "Blend a label PNG over its image (background and void pixels stay as they are) and add a legend "
            "below it: each class present, its colour beside its name (from --dataset's class list)."
        ),
    )
    show.add_argument("image", type=Path, help="the image file")
    show.add_argument("labels", type=Path, help="the label PNG (mode P, values 0..C)")
    show.add_argument("-o", "--output", type=Path, required=True, help="overlay PNG to write")
    show.add_argument("--dataset", default="demo",
                      help="dataset whose class names label the legend (default: %(default)s)")
    show.add_argument("--config", default="config.yaml", help="config file (default: %(default)s)")
    show.set_defaults(func=run_overlay)
    return parser


def run_overlay(args: argparse.Namespace) -> int:
    """``fmwsss overlay IMAGE LABELS -o OUT``."""
    from fmwsss.cli.tags import dataset_class_names
    from fmwsss.data.images import load_rgb
    from fmwsss.data.palette import load_label_png, voc_palette
    from fmwsss.pipeline.config import Config

    class_names = dataset_class_names(Config.from_file(args.config), args.dataset)
    rgb, labels = load_rgb(args.image), load_label_png(args.labels)
    if labels.shape != rgb.shape[:2]:
        raise ValueError(f"{args.labels}: size {labels.shape[::-1]} differs from {args.image} {rgb.shape[1::-1]}")
    try:
        write_overlay(args.output, rgb, labels, voc_palette(), class_names)
    except ValueError as exc:
        raise ValueError(f"{args.labels}: {exc}; is it a label map of dataset {args.dataset!r}? "
                         f"Name its dataset with --dataset") from exc
    print(f"overlay of {args.labels} on {args.image} -> {args.output}")
    return 0


def run_prompts(run: Path, config, dataset: str) -> Path:
    """``run/store/prompts_seg_train/<current key>/prompts.pt``; FileNotFoundError says how to make it."""
    from fmwsss.pipeline.plan import Plan

    key = Plan(config, results=str(run.parent)).key(dataset, "prompts_seg_train")  # run = results/<dataset>
    path = run / "store" / "prompts_seg_train" / key / "prompts.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no segmentation prompts for dataset {dataset!r} with the current {config.where} "
            f"(key {key}); train them with the pipeline (snakemake --cores all results/{dataset}/seeds) "
            f"or pass --prompts FILE"
        )
    return path


@dataclass(frozen=True)
class SeedInputs:
    """What ``fmwsss seed`` was asked for, checked: everything but the models."""

    config: Any  # fmwsss.pipeline.config.Config
    dataset: str
    settings: dict
    class_names: tuple[str, ...]
    classes: Any  # np.ndarray int64 (P,): the tagged class ids, ascending
    rgb: Any  # np.ndarray uint8 (H, W, 3)
    prompts: Path | None


def _require_writable(path: Path, option: str) -> None:
    """``path`` can be created: its folder exists and is writable (checked before minutes of model work)."""
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"{option} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"{option} {path}: folder {folder} is not writable")


def check_seed_args(args: argparse.Namespace) -> SeedInputs:
    """Check every argument of ``fmwsss seed`` without importing torch or any model code, so a typo is
    reported at once: the config and dataset, the image (decoded), the tags (against the dataset's class
    names, listed in the error), --run / --prompts, and the folders of -o / --overlay."""
    from fmwsss.cli.tags import class_ids, dataset_class_names, parse_tags
    from fmwsss.data.images import load_rgb
    from fmwsss.pipeline.config import Config

    config = Config.from_file(args.config)
    dataset = args.dataset or (args.run.resolve().name if args.run else "demo")
    settings = config.settings(dataset)
    rgb = load_rgb(args.image)
    class_names = dataset_class_names(config, dataset)
    classes = class_ids(parse_tags(args.tags), class_names)
    if args.run is not None and not args.run.is_dir():
        raise FileNotFoundError(f"--run {args.run}: no such results folder (a pipeline's results/<dataset>)")
    if args.prompts is not None and not args.prompts.is_file():
        raise FileNotFoundError(f"--prompts {args.prompts}: prompts file not found")
    _require_writable(args.output, "-o")
    if args.overlay:
        _require_writable(args.overlay, "--overlay")
    prompts = args.prompts or (run_prompts(args.run, config, dataset) if args.run else None)
    return SeedInputs(config, dataset, settings, class_names, classes, rgb, prompts)


def run_seed(args: argparse.Namespace) -> int:
    """The ``seed`` command: check every argument first (no torch import), then load the models and run."""
    inputs = check_seed_args(args)

    from fmwsss.cli import single_image
    from fmwsss.data.palette import palette_for, save_label_png
    from fmwsss.devices import resolve_device
    from fmwsss.models.weights import is_test_model
    from fmwsss.prompts.learners import zero_shot_marker
    from fmwsss.sam.build import SamSpeed

    prompts, class_names = inputs.prompts, inputs.class_names
    if prompts is None:
        print(ZERO_SHOT_WARNING, file=sys.stderr)
    elif zero_shot_marker(prompts):
        print(f"fmwsss seed: note: {prompts} holds no trained prompts (prompts_seg mode zero_shot): "
              f"zero-shot CLIP-ES prompts are used", file=sys.stderr)
    test_models = [n for n in inputs.settings["models"].values() if is_test_model(n)]
    if test_models:
        print(f"fmwsss seed: note: {', '.join(test_models)} are random-weight test models; the seed shows the "
              f"plumbing, not the method's quality", file=sys.stderr)
    runtime = inputs.config.runtime
    chain = single_image.FineChain.load(
        inputs.settings, class_names, prompts, resolve_device(args.device or runtime["device"]),
        speed=SamSpeed.from_runtime(runtime),
    )
    result = chain.run(inputs.rgb, inputs.classes)
    palette = palette_for(len(class_names))
    save_label_png(args.output, result.seed, palette)
    if args.overlay:
        write_overlay(args.overlay, inputs.rgb, result.seed, palette, class_names)
    print(summary_line(args.image.name, result, class_names, args.output, args.overlay))
    return 0


def write_overlay(path: Path, rgb, seed, palette: list[int], class_names) -> None:
    """The image blended with its coloured labels, the legend of the classes present below it, as an RGB PNG
    written atomically. ``ValueError`` when ``seed`` holds a label beyond ``class_names``."""
    import io

    from PIL import Image

    from fmwsss.cli.legend import with_legend
    from fmwsss.cli.single_image import overlay
    from fmwsss.io.atomic import atomic_write_bytes

    buf = io.BytesIO()
    Image.fromarray(with_legend(overlay(rgb, seed, palette), seed, class_names, palette)).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def summary_line(name: str, result, class_names, output: Path, overlay_path: Path | None) -> str:
    """One line: how many tagged classes made it into the seed, each one's pixel share, and the files."""
    from fmwsss.cli.single_image import label_fractions

    fractions = label_fractions(result.seed, [0, *result.classes.tolist()])
    shares = [f"{class_names[c - 1]} {100 * f:.1f}%" for c, f in fractions.items() if c]
    shares.append(f"background {100 * fractions[0]:.1f}%")
    found = sum(1 for c, f in fractions.items() if c and f > 0)
    masks = f", {len(result.masks)} SAM masks" if result.masks is not None else ""
    files = f" -> {output}" + (f" (overlay {overlay_path})" if overlay_path else "")
    return f"{name}: {found}/{len(result.classes)} tagged classes found{masks}: {', '.join(shares)}{files}"
