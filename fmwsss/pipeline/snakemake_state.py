"""What Snakemake itself records about an output, read without importing Snakemake: whether a job that writes
it was started and never finished (its ``.snakemake/incomplete`` marker).

``fmwsss status`` must agree with Snakemake on what is finished: a job killed after its last file was
written (a finalize's spec.json) leaves the file in place and the marker too, and Snakemake then calls the
output incomplete. The marker's name is Snakemake 9's (``persistence/file.py``): the output path as the rule
names it, urlsafe-base64 encoded, split into folder levels of at most NAME_MAX - 1 characters, each but the
last prefixed with ``@``.
"""
from __future__ import annotations

import os
from base64 import urlsafe_b64encode
from pathlib import Path

INCOMPLETE = Path(".snakemake") / "incomplete"


def _marker(workdir: Path, output: str) -> Path:
    folder = workdir / INCOMPLETE
    try:
        max_len = os.pathconf(folder, "PC_NAME_MAX") or 255
    except OSError:
        max_len = 255
    name = urlsafe_b64encode(output.encode()).decode()
    parts = [name[i : i + max_len - 1] for i in range(0, len(name), max_len - 1)]
    return folder.joinpath(*["@" + p for p in parts[:-1]], parts[-1])


def is_incomplete(output: str, workdir: str | os.PathLike = ".") -> bool:
    """Whether Snakemake marks ``output`` (a path relative to the working directory, as the rule names it) as
    written by a job that never finished."""
    workdir = Path(workdir)
    return (workdir / INCOMPLETE).is_dir() and _marker(workdir, output).is_file()
