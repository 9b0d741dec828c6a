"""Print, as JSON, the files a dry run would (re)build: Snakemake's API `updated_files` oracle.

Run in a subprocess with the working directory as cwd:
    python dryrun_oracle.py SNAKEFILE TARGET [TARGET...]
The Python API loads no profile, so the rerun triggers of profiles/default are passed explicitly here.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml
from snakemake.api import SnakemakeApi
from snakemake.settings.enums import Quietness, RerunTrigger
from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings


def main() -> None:
    snakefile, targets = Path(sys.argv[1]), sys.argv[2:]
    profile = yaml.safe_load((snakefile.parent / "profiles" / "default" / "config.yaml").read_text())
    triggers = {RerunTrigger[t.upper().replace("-", "_")] for t in profile["rerun-triggers"]}
    updated: list[str] = []
    with SnakemakeApi(OutputSettings(dryrun=True, quiet={Quietness.ALL})) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=[Path("config.yaml").resolve()]),
            snakefile=snakefile,
            workdir=Path.cwd(),
        )
        dag = workflow.dag(DAGSettings(targets=set(targets), rerun_triggers=triggers))
        dag.execute_workflow(executor="dryrun", updated_files=updated)
    print(json.dumps(sorted(set(updated))))


if __name__ == "__main__":
    main()
