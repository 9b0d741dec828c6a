"""``fmwsss weights ...``: list, fetch and verify checkpoints, and make the random-weight test models.

``register(subparsers)`` adds the group to the top-level ``fmwsss`` parser; each subcommand sets
``args.func(args) -> int`` (the exit status).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fmwsss.models.weights import (
    RANDOM_SEED,
    WEIGHTS,
    MissingWeightsError,
    WeightsIntegrityError,
    list_weights,
    local_path,
    missing_message,
    random_model_names,
    tiny_model_names,
    verify_local,
    weight_status,
)

_DIR_HELP = "weights directory (default: $FMWSSS_WEIGHTS_DIR or resources/weights under the current directory)"


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``weights`` command group to ``subparsers``; return its parser."""
    parser = subparsers.add_parser(
        "weights", help="list, download, verify pretrained weights; make random-weight test models",
        description="Pretrained CLIP/SAM checkpoints: registry, sha256-checked downloads, random-weight test "
                    "models (tiny, or the real architectures) made locally.",
    )
    fetchable = [n for n in list_weights() if not WEIGHTS[n].made_locally]
    sub = parser.add_subparsers(dest="weights_command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "list", help="registered weights and their local state, without hashing",
        description="LOCAL is `present` only for a file whose <file>.sha256 sidecar (written when it was verified, "
                    "or when a test model was made) still matches its size and mtime (a tiny model's bytes are "
                    "hashed: a few MB); `unverified` for a file "
                    "never verified or changed since (run `fmwsss weights verify NAME`); `mismatch` for a size "
                    "other than the registry's or a sidecar recording other bytes; `missing`. SIZE is the "
                    "registry's declared size, `unknown` where it declares none; `tiny` and `random` mark the "
                    "random-weight test models made locally (`make-tiny`, `make-random`); `digest unpinned` a "
                    "real checkpoint whose sha256 the registry does not declare yet (its first fetch or "
                    "verify records the digest later checks insist on).",
    )
    p.add_argument("--dir", type=Path, default=None, help=_DIR_HELP)
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("fetch", help="download a checkpoint and check its size and sha256")
    p.add_argument("name", choices=fetchable, metavar="NAME", help=f"weights to download: {', '.join(fetchable)}")
    p.add_argument("--dir", type=Path, default=None, help=_DIR_HELP)
    p.add_argument("--url", default=None,
                   help="download from this URL instead of $FMWSSS_WEIGHTS_MIRROR/<file> or the registry URL")
    p.add_argument("--no-progress", action="store_true", help="do not draw a progress bar")
    p.set_defaults(func=_cmd_fetch)

    p = sub.add_parser(
        "verify", help="check local checkpoints' size and sha256 (hash cached in <file>.sha256)",
        description="Real checkpoints are checked against the registry's size and sha256; test models made "
                    "locally against the sha256 recorded when they were made. A match writes <file>.sha256, "
                    "which pipeline jobs "
                    "require (they refuse a file changed since); a mismatch names the file, the expected and "
                    "found sha256 and the command that gets the right file.",
    )
    p.add_argument("names", nargs="+", choices=list_weights(), metavar="NAME",
                   help=f"weights to check: {', '.join(list_weights())}")
    p.add_argument("--dir", type=Path, default=None, help=_DIR_HELP)
    p.add_argument("--force", action="store_true",
                   help="re-hash even when the sidecar says the file is unchanged (seconds per GB)")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("make-tiny",
                       help="create the tiny random-weight CLIP, SAM and Swin used by tests and the demo")
    p.add_argument("--dir", type=Path, default=None, help=_DIR_HELP)
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same weights")
    p.set_defaults(func=_cmd_make_tiny)

    names = random_model_names()
    p = sub.add_parser(
        "make-random", help="create full-size random-weight test models (real architectures, for cost rehearsals)",
        description="Create the real architectures with random weights, in the released checkpoints' formats, so "
                    "the real loaders read them: random_clip_vit_b16 (OpenAI TorchScript archive, ~300 MB) and "
                    "random_sam_vit_h (segment-anything state dict, 2.4 GiB, ~25 s and ~3.3 GB of memory on one "
                    "CPU core). A rehearsal measures real time and memory with them; their results mean nothing "
                    "(every report marks them). Each file is streamed to a temporary name while hashed, renamed "
                    "into place, and its sha256 recorded in <file>.sha256: `fmwsss weights verify` checks "
                    "against that record, and pipeline jobs then trust the file's size and mtime as for a real "
                    "checkpoint. The workflow makes them itself when a config names them (models: {clip: "
                    "random_clip_vit_b16, sam: random_sam_vit_h}).",
    )
    p.add_argument("names", nargs="*", type=_random_name, metavar="NAME",
                   help=f"models to create (default: all): {', '.join(names)}")
    p.add_argument("--dir", type=Path, default=None, help=_DIR_HELP)
    p.add_argument("--seed", type=int, default=RANDOM_SEED,
                   help=f"random seed (default {RANDOM_SEED}, the one stage keys assume); the same seed gives "
                        "the same weights")
    p.set_defaults(func=_cmd_make_random)
    return parser


def _random_name(value: str) -> str:
    """A full-size random model's name (argparse's ``choices`` refuses an empty ``nargs="*"`` list)."""
    names = random_model_names()
    if value not in names:
        raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from {', '.join(names)})")
    return value


def _human(size: int | None) -> str:
    """Bytes as B/KiB/MiB/GiB with one decimal; "unknown" when the registry declares no size (never guessed)."""
    if size is None:
        return "unknown"
    units = ("B", "KiB", "MiB", "GiB")
    value, i = float(size), 0
    while value >= 1024 and i < len(units) - 1:
        value, i = value / 1024, i + 1
    return f"{size} B" if i == 0 else f"{value:.1f} {units[i]}"


def _cmd_list(args: argparse.Namespace) -> int:
    rows = [("NAME", "KIND", "ARCH", "SIZE", "LOCAL")]
    for name in list_weights():
        spec = WEIGHTS[name]
        size = ("tiny" if spec.tiny else "random" if spec.made_locally else
                f"{_human(spec.size)} (digest unpinned)" if spec.sha256 is None else _human(spec.size))
        rows.append((name, spec.kind, spec.arch, size, weight_status(name, args.dir)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from fmwsss.models.download import fetch_weight

    try:
        path = fetch_weight(args.name, args.dir, url=args.url, progress=not args.no_progress)
    except (MissingWeightsError, WeightsIntegrityError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(path)
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    status = 0
    for name in args.names:
        spec = WEIGHTS[name]
        path = local_path(name, args.dir)
        try:
            if not path.is_file():
                raise MissingWeightsError(missing_message(spec, path))
            digest = verify_local(path, spec, force=args.force)
        except (MissingWeightsError, WeightsIntegrityError) as err:
            print(f"error: {err}", file=sys.stderr)
            status = 1
            continue
        made = (" (test model: as recorded when made)" if spec.made_locally else
                " (as recorded by its first fetch/verify: the registry declares no sha256)" if spec.sha256 is None
                else "")
        print(f"OK  {name}  {path}  sha256 {digest}{made}")
    return status


def _cmd_make_tiny(args: argparse.Namespace) -> int:
    from fmwsss.models.tiny_models import create_tiny_model

    for name in tiny_model_names():
        print(f"wrote {create_tiny_model(name, local_path(name, args.dir), args.seed)}")
    return 0


def _cmd_make_random(args: argparse.Namespace) -> int:
    from fmwsss.models.random_models import create_random_model

    for name in args.names or random_model_names():
        create_random_model(name, local_path(name, args.dir), args.seed, log=lambda msg: print(msg, flush=True))
    return 0
