"""The GPU suite's wheel folder from a downloaded dependency closure (``make gpu-wheels`` runs it).

The GPU machine has no venv and no network; ``benchmarks/gpu_suite.sh`` installs every wheel of
``benchmarks/wheels`` whose distribution its python lacks. This script copies into that folder the wheels of a
closure (Snakemake's, downloaded for cp312 manylinux x86_64) minus the distributions the GPU image already has
(``--image-has``) and those left out on purpose (``--skip``), replacing any other version of the same
distribution there (two versions of one stop the whole install). ``--check-python`` (a python 3.12 without
torch) then checks the closure: the wheels the machine would end up with (copied and image-has ones) are
installed into a fresh ``--target`` folder, every requirement of every installed distribution must be met
there (the skipped ones are named, not failed), and with nothing but that folder on its path (``python -S``)
``python -m snakemake`` runs a two-job workflow.

    python benchmarks/gpu_wheels.py --closure build/gpu-closure --dest benchmarks/wheels \\
        --image-has "attrs jinja2 ..." --skip pulp --check-python python3.12
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: Run by the checking python with only the target folder on its path: each unmet requirement as
#: distribution, required name, requirement.
_REQUIREMENTS_CHECK = """
import importlib.metadata as md, sys
from packaging.requirements import Requirement
for dist in md.distributions(path=[sys.argv[1]]):
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            version = md.version(req.name)
        except md.PackageNotFoundError:
            print(dist.metadata["Name"], req.name, text, sep="\\t")
            continue
        if not req.specifier.contains(version, prereleases=True):
            print(dist.metadata["Name"], req.name, f"{text} (found {version})", sep="\\t")
"""
_WORKFLOW = """
rule all:
    input: expand("out/{i}.txt", i=range(2))

rule one:
    output: "out/{i}.txt"
    shell: "echo {wildcards.i} > {output}"
"""


def dist_name(wheel: Path) -> str:
    """A wheel's normalised distribution name (PEP 503: runs of ``-_.`` become ``-``, lower case)."""
    return re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()


def names(text: str) -> set[str]:
    return {re.sub(r"[-_.]+", "-", n).lower() for n in text.split()}


def ship(closure: Path, dest: Path, leave_out: set[str]) -> list[Path]:
    """Copy the closure's wheels not in ``leave_out`` to ``dest`` (other versions there removed)."""
    dest.mkdir(parents=True, exist_ok=True)
    shipped = []
    for wheel in sorted(closure.glob("*.whl")):
        name = dist_name(wheel)
        if name in leave_out:
            continue
        for old in dest.glob("*.whl"):
            if dist_name(old) == name and old.name != wheel.name:
                old.unlink()
        shutil.copy2(wheel, dest / wheel.name)
        shipped.append(dest / wheel.name)
    return shipped


def check(python: str, wheels: list[Path], skipped: set[str]) -> list[str]:
    """Problems of ``wheels`` as the only packages of ``python`` (empty: the closure is whole)."""
    try:
        version = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
                                 capture_output=True, text=True)
        found = version.stdout.strip() == "True", version.stderr.strip()[-200:]
    except OSError as error:
        found = False, str(error)
    if not found[0]:
        return [f"--check-python {python} is not a runnable python 3.12 ({found[1]}); name one (make gpu-wheels "
                f"GPU_CHECK_PYTHON=...) or leave it empty to skip the check"]
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "site"
        subprocess.run([python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--disable-pip-version-check", "--root-user-action=ignore", "--target", str(target),
                        *map(str, wheels)], check=True)
        env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
        unmet = subprocess.run([python, "-S", "-c", _REQUIREMENTS_CHECK, str(target)], env=env,
                               capture_output=True, text=True)
        if unmet.returncode:
            return [f"requirements check failed: {unmet.stderr.strip()[-500:]}"]
        for line in unmet.stdout.splitlines():
            dist, required, requirement = line.split("\t")
            if names(required) & skipped:
                print(f"left out on purpose: {dist} needs {requirement}")
            else:
                problems.append(f"{dist} needs {requirement}: not in the closure")
        (Path(tmp) / "Snakefile").write_text(_WORKFLOW)
        run = subprocess.run([python, "-S", "-m", "snakemake", "--cores", "2", "--quiet"], cwd=tmp, env=env,
                             capture_output=True, text=True)
        if run.returncode or not (Path(tmp) / "out" / "1.txt").is_file():
            problems.append(f"python -S -m snakemake failed ({run.returncode}): {run.stderr.strip()[-1500:]}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--closure", type=Path, required=True, help="the downloaded closure's wheels")
    parser.add_argument("--dest", type=Path, required=True, help="the suite's wheel folder")
    parser.add_argument("--image-has", default="", help="distributions the GPU image has (space-separated)")
    parser.add_argument("--skip", default="", help="distributions left out on purpose (space-separated)")
    parser.add_argument("--check-python", help="a python 3.12 to check the closure with (empty: no check)")
    args = parser.parse_args(argv)
    have, skip = names(args.image_has), names(args.skip)
    shipped = ship(args.closure, args.dest, have | skip)
    size = sum(w.stat().st_size for w in shipped) / 2**20
    print(f"{len(shipped)} wheels ({size:.1f} MB) copied to {args.dest}; the GPU image has {' '.join(sorted(have))}; "
          f"left out: {' '.join(sorted(skip)) or 'nothing'}")
    if not args.check_python:
        print("closure not checked (no --check-python)")
        return 0
    machine = [w for w in sorted(args.closure.glob("*.whl")) if dist_name(w) not in skip]
    problems = check(args.check_python, machine, skip)
    for problem in problems:
        print(f"gpu_wheels: {problem}", file=sys.stderr)
    if not problems:
        print(f"closure checked with {args.check_python}: {len(machine)} wheels install, every requirement is met "
              f"but the ones left out, and python -S -m snakemake ran a workflow")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
