"""Every `docs/method.md §N` reference in the repository (code, tests, config, schema, README) names a numbered
section of docs/method.md, so renumbering the method notes cannot leave a docstring pointing nowhere."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHOD = ROOT / "docs" / "method.md"
# "docs/method.md §10", "docs/method.md §3, §8, §10", "docs/method.md §3–§10", "docs/method.md §3 and §10"
REFERENCE = re.compile(r"docs/method\.md (§\d+(?:\.\d+)?(?:(?:,\s*|\s*[–-]\s*|\s+and\s+)§\d+(?:\.\d+)?)*)")


def method_sections() -> set[str]:
    """Numbers of the headings of docs/method.md: '1', ..., '6.1', ..."""
    return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", METHOD.read_text(), re.M))


def citing_files() -> list[Path]:
    """Where the method is cited: the README, the config and its schema, and every Python file."""
    files = [ROOT / "README.md", ROOT / "config.yaml", ROOT / "workflow/schemas/config.schema.yaml"]
    return files + [p for folder in ("fmwsss", "tests", "workflow", "benchmarks") for p in (ROOT / folder).rglob("*.py")]


def references() -> dict[str, set[str]]:
    """Section number -> the files that cite it."""
    found: dict[str, set[str]] = {}
    for path in citing_files():
        for span in REFERENCE.findall(path.read_text()):
            for number in re.findall(r"§(\d+(?:\.\d+)?)", span):
                found.setdefault(number, set()).add(str(path.relative_to(ROOT)))
    return found


def test_method_notes_have_numbered_sections():
    sections = method_sections()
    assert {str(n) for n in range(1, 17)} <= sections and {"6.1", "6.2"} <= sections, sorted(sections)


def test_every_method_reference_names_a_section():
    cited = references()
    assert {"3", "9", "10", "13"} <= set(cited), cited  # the docstrings of the CAM, SAM, SAMS code and the COCO preset
    missing = {number: sorted(files) for number, files in cited.items() if number not in method_sections()}
    assert not missing, f"docs/method.md has no section for these references: {missing}"


def test_no_reference_to_a_method_file_outside_the_repository():
    """The reference notes the code was written from live outside the repository; cite docs/method.md."""
    stale = [f"{path.relative_to(ROOT)}: {m}" for path in citing_files()
             for m in re.findall(r"(?<!docs/)method(?:\.md)? §\d+", path.read_text())]
    assert not stale, stale
