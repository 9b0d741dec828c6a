"""fmwsss: weakly supervised semantic segmentation from image tags with frozen CLIP and SAM.

Every stage writes results/{dataset}/store/{stage}/{key}/ where the key hashes the stage's version, its
settings and its upstream keys; results/{dataset}/{alias} are relative symlinks to the current variants.
Main target: results/{dataset}/seeds (the pseudo labels). See README.md.
"""

import os
import sys

from snakemake.utils import min_version

min_version("9.22")

sys.path.insert(0, workflow.basedir)

from fmwsss.pipeline.config import Config, check_unique_keys
from fmwsss.pipeline.plan import Plan
from fmwsss.pipeline.stage_settings import check_stage_settings
from fmwsss.pipeline.stages import ALIASES, SCORES, STAGES, upstream_aliases
from fmwsss.pipeline.entrypoints import (
    alias_job, fetch_weights_job, finalize_job, make_random_job, make_tiny_job, verify_weights_job,
)
from fmwsss.models.weights import RANDOM_SEED, SIDECAR_SUFFIX, WEIGHTS, random_model_names, weights_dir
from fmwsss.report.build import report_job


configfile: "config.yaml"


for _path in workflow.configfiles:  # Snakemake's YAML loader keeps the last of two equal keys silently
    check_unique_keys(_path)


report: "workflow/report/workflow.rst"


check_stage_settings(Config(config))  # every stage of every dataset, before any dataset is opened

# Datasets are opened lazily, through their index; only the main process builds or refreshes an index,
# job processes (subprocess/remote mode) read it and fail naming the command to run when it is stale.
PLAN = Plan(config, refresh=workflow.is_main_process)
WEIGHTS_DIR = os.path.relpath(weights_dir()) if weights_dir().is_relative_to(os.getcwd()) else str(weights_dir())
WEIGHT_BY_FILE = {w.filename: name for name, w in WEIGHTS.items()}


wildcard_constraints:
    dataset="|".join(PLAN.datasets),
    key=r"[0-9a-f]+",
    shard=r"shard-\d+",
    alias="|".join(ALIASES),


include: "workflow/rules/gpus.smk"
include: "workflow/rules/common.smk"
include: "workflow/rules/weights.smk"
include: "workflow/rules/sam.smk"
include: "workflow/rules/prompts.smk"
include: "workflow/rules/cams.smk"
include: "workflow/rules/seeds.smk"
include: "workflow/rules/deeplab.smk"
include: "workflow/rules/scores.smk"
include: "workflow/rules/aliases.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    localrule: True
    input:
        "results/demo/deeplab",
