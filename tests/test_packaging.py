"""The conda env mirrors pyproject's pins, and every rule declares it."""
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
