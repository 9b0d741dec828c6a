"""Every README section that a message of fmwsss names ("see README, 'Running on your data'") is a heading of
README.md, so a renamed or removed section fails here instead of sending a user nowhere."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from fmwsss.pipeline.config import Config
from fmwsss.pipeline.plan import Plan

ROOT = Path(__file__).resolve().parents[1]
SECTION_REF = re.compile(r"README, '([^'{}]+)'")  # an f-string's '{section}' is checked below


def readme_headings() -> dict[str, str]:
    """Heading text -> the section's prose up to the next heading; lines inside fenced blocks are no headings."""
    sections: dict[str, list[str]] = {}
    current, fenced = None, False
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"^#{1,6} (.+?)\s*$", line)
        if heading:
            current = heading.group(1)
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return {name: "\n".join(lines) for name, lines in sections.items()}


def test_headings_are_found_and_fenced_comments_are_not():
    headings = readme_headings()
    assert "Running on your data" in headings and "Repairing the store" in headings
    assert not any(h.startswith("->") for h in headings)  # `# -> results/demo/report/...` in a bash block


def test_every_readme_section_named_in_the_code_is_a_heading():
    refs = {
        (path.relative_to(ROOT), name)
        for path in (ROOT / "fmwsss").rglob("*.py")
        for name in SECTION_REF.findall(path.read_text())
    }
    assert refs, "no README section reference found: has the message format changed?"
    headings = readme_headings()
    missing = sorted((str(path), name) for path, name in refs if name not in headings)
    assert not missing, f"README sections named in the code but not headings of README.md: {missing}"


@pytest.mark.parametrize("dataset_type", ["voc", "coco", "custom", "demo"])
def test_an_unset_root_names_a_readme_section_that_explains_root(tmp_path, dataset_type):
    entry = {"type": dataset_type, "root": None, "preset": "voc"}
    config = Config({"datasets": {"mine": entry}, "presets": {"voc": {}}})
    error = Plan(config, results=str(tmp_path)).datasets["mine"].error
    (section,) = SECTION_REF.findall(error)
    assert "root" in readme_headings()[section], (section, error)
