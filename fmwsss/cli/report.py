"""``fmwsss report DATASET``: build results/DATASET/report/index.html from what the store holds."""
from __future__ import annotations

import argparse


def _cmd_report(args: argparse.Namespace) -> int:
    from fmwsss.pipeline.config import Config
    from fmwsss.pipeline.plan import Plan
    from fmwsss.report.build import build_report
    from fmwsss.report.collect import RunView

    run = RunView.from_plan(Plan(Config.from_file(args.config)), args.dataset, args.results)
    build_report(run, out=args.out)  # its last log line names the report's index.html
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser(
        "report",
        help="write results/DATASET/report/index.html: summary, per-class IoU, curves, gallery, variants",
        description=(
            "Build the HTML report of a dataset's run from the store: summary (keys, settings, run times, "
            "metrics), per-class IoU and confusion matrices where ground truth exists, training curves, a "
            "per-image gallery (sortable worst-first, filterable by class, 100 rows a page) and the table of "
            "every variant in the store with the settings that differ from the current config. Works on a "
            "partial run (stages not built are shown as such). Thumbnails are cached in "
            "results/DATASET/.report-cache/ by store key and image id, so a rebuild after a new variant draws "
            "only that variant's column (cost: ~40 kB and ~50 ms CPU per image and drawn column set). Open "
            "index.html in any browser; it needs no network."
        ),
    )
    report.add_argument("dataset", help="dataset name under `datasets:` in the config")
    report.add_argument("--config", default="config.yaml", help="config file (default: %(default)s)")
    report.add_argument("--results", default="results", help="results folder (default: %(default)s)")
    report.add_argument("--out", default=None, help="report folder (default: RESULTS/DATASET/report)")
    report.set_defaults(func=_cmd_report)
