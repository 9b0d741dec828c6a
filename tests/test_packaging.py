"""The conda env mirrors pyproject's pins, every rule declares it, and the Python floor agrees everywhere."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _norm(req: str) -> tuple[str, str]:
    name, spec = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", req.strip()).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def test_env_file_pins_match_pyproject():
    env_file = ROOT / "envs" / "fmwsss.yaml"
    assert env_file.is_file()
    env = yaml.safe_load(env_file.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert dict(map(_norm, pip)) == dict(map(_norm, project))


def test_every_script_rule_declares_the_env():
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        for rule in re.split(r"\nrule ", smk.read_text())[1:]:
            if "script:" in rule:
                assert 'conda:\n        "../../envs/fmwsss.yaml"' in rule, (smk.name, rule.splitlines()[0])


def _floor(spec: str) -> tuple[int, int]:
    major, minor = re.fullmatch(r">=\s*(\d+)\.(\d+)(?:\.\d+)?", spec.strip()).groups()
    return int(major), int(minor)


def test_python_floor_agrees_with_snakemake_makefile_and_env():
    """A user on an older Python must meet the clear message of `make install` (its PYTHON_MIN) or pip's
    requires-python check, never a resolver error deep in Snakemake's dependencies."""
    from importlib.metadata import metadata

    project = _floor(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    assert project >= _floor(metadata("snakemake")["Requires-Python"])
    make_min = re.search(r"^PYTHON_MIN := (\d+)\.(\d+)$", (ROOT / "Makefile").read_text(), re.M).groups()
    assert tuple(map(int, make_min)) == project
    env = yaml.safe_load((ROOT / "envs" / "fmwsss.yaml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert tuple(map(int, python.split("=")[-1].split(".")[:2])) >= project
