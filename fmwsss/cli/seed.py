"""``fmwsss seed IMAGE --tags cat,person -o out.png``: the fine chain for one image, without Snakemake.

``register(subparsers)`` adds the subcommand to the top-level ``fmwsss`` parser and sets
``args.func(args) -> int``.
Errors are raised (missing weights or files, unknown tags, bad config) for ``fmwsss.cli.main.main`` to report.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    from fmwsss.cli.single_image import dataset_class_names
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


def parse_tags(text: str) -> list[str]:
    """Comma-separated tag names, stripped, empty entries dropped."""
    return [t.strip() for t in text.split(",") if t.strip()]


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


def run_seed(args: argparse.Namespace) -> int:
    """The ``seed`` command: validate everything cheap first, then load the models and run the chain."""
    from fmwsss.data.images import load_rgb
    from fmwsss.data.palette import palette_for, save_label_png
    from fmwsss.pipeline.config import Config
    from fmwsss.devices import resolve_device
    from fmwsss.cli.single_image import FineChain, class_ids, dataset_class_names
    from fmwsss.prompts.learners import zero_shot_marker

    config = Config.from_file(args.config)
    dataset = args.dataset or (args.run.resolve().name if args.run else "demo")
    settings = config.settings(dataset)
    class_names = dataset_class_names(config, dataset)
    classes = class_ids(parse_tags(args.tags), class_names)
    rgb = load_rgb(args.image)
    prompts = args.prompts or (run_prompts(args.run, config, dataset) if args.run else None)
    if prompts is not None and not prompts.is_file():
        raise FileNotFoundError(f"prompts file not found: {prompts}")
    if prompts is None:
        print(ZERO_SHOT_WARNING, file=sys.stderr)
    elif zero_shot_marker(prompts):
        print(f"fmwsss seed: note: {prompts} holds no trained prompts (prompts_seg mode zero_shot): "
              f"zero-shot CLIP-ES prompts are used", file=sys.stderr)
    tiny = [n for n in settings["models"].values() if n.startswith("tiny_")]
    if tiny:
        print(f"fmwsss seed: note: {', '.join(tiny)} are random test models; the seed shows the plumbing, "
              f"not the method's quality", file=sys.stderr)

    from fmwsss.sam.build import SamSpeed

    runtime = config.runtime
    chain = FineChain.load(settings, class_names, prompts, resolve_device(args.device or runtime["device"]),
                           speed=SamSpeed.from_runtime(runtime))
    result = chain.run(rgb, classes)
    palette = palette_for(len(class_names))
    save_label_png(args.output, result.seed, palette)
    if args.overlay:
        write_overlay(args.overlay, rgb, result.seed, palette, class_names)
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
