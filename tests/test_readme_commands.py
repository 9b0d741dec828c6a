"""README.md's commands do what the README says.

Every command of a fenced shell block is either in CHECKS (a check of its documented effect: the jobs a
Snakemake dry-run schedules, the files and output an `fmwsss` command produces; an exit status alone never
counts) or in SKIPPED (with the reason). A new command in neither fails `test_every_command_is_checked_or_skipped`;
adding one is one line in either table. Inline `fmwsss ...` and `snakemake ...` spans of the prose are parsed
with the real argument parsers (a removed sub-command or an option that swallows a target fails).

The checks share one copy of the session's finished demo run (`demo_run`); each leaves it as it found it.
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import yaml
from PIL import Image

from fmwsss.cli.main import build_parser, main
from tests.workflow.conftest import BIN, ROOT, Workdir
from tests.processes import run

README = ROOT / "README.md"
SHELLS = {"bash", "sh", "shell", "console"}
LANGUAGES = SHELLS | {"text", "yaml", "python"}
FENCE = re.compile(r"^```(\S*)\s*$")


def fenced_blocks(text: str) -> list[tuple[str, int, list[str]]]:
    """(language, line of the opening fence, lines) of every fenced block."""
    blocks, current = [], None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if current is None and match:
            current = (match.group(1), number, [])
        elif current is not None and line.rstrip() == "```":
            blocks.append(current)
            current = None
        elif current is not None:
            current[2].append(line)
    assert current is None, f"README.md: fence opened at line {current[1]} is never closed"
    return blocks


def _strip_comment(line: str) -> str:
    """The line without its shell comment (a `#` at the start or after a space, outside quotes)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def shell_commands(text: str) -> list[str]:
    """Every command line of the shell blocks: comments removed, `\\` continuations joined, spaces collapsed."""
    out = []
    for language, _, lines in fenced_blocks(text):
        if language not in SHELLS:
            continue
        joined = "\n".join(lines).replace("\\\n", " ")
        for line in joined.splitlines():
            command = " ".join(_strip_comment(line).split())
            if command:
                out.append(command)
    return out


def inline_commands(text: str, program: str) -> list[str]:
    """Inline code spans of the prose that call ``program`` (spans may wrap lines); a span whose second word
    ends in a colon quotes the program's output (`fmwsss error: ...`), not a command."""
    spans = {" ".join(m.split()) for m in re.findall(rf"`({program} [^`]+)`", text)}
    return sorted(s for s in spans if not s.split()[1].endswith(":"))


# --- running commands ---------------------------------------------------------------------------------------


def _snakemake(wd: Path, command: str, *extra: str) -> str:
    """Run a README snakemake command in ``wd`` (the repo's Snakefile, as from the repo root); its output."""
    argv = shlex.split(command)
    assert argv[0] == "snakemake"
    proc = run([str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), *argv[1:], *extra], 300, cwd=wd)
    return f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def _jobs(out: str) -> dict[str, int]:
    """The first `job count` table of a dry-run's output; {} when it schedules nothing."""
    if "Nothing to be done" in out:
        return {}
    table = re.search(r"^job\s+count\n-+\s+-+\n(.*?)^total\s+\d+", out, re.M | re.S)
    assert table, out[-3000:]
    return {name: int(n) for name, n in re.findall(r"^(\w+)\s+(\d+)$", table.group(1), re.M)}


def _fmwsss(wd: Path, command: str) -> str:
    """Run a README fmwsss command in this process (torch is imported once per session); its stdout."""
    out = io.StringIO()
    with contextlib.chdir(wd), contextlib.redirect_stdout(out):
        code = main(shlex.split(command)[1:])
    assert code == 0, out.getvalue()
    return out.getvalue()


# --- checks: each gets the README command and the folder to run it in ---------------------------------------


@dataclass(frozen=True)
class Check:
    run: Callable[[str, Path], None]
    needs_run: bool = True  # run in the copy of the finished demo run (else in an empty temporary folder)


def _dry_run_schedules(expected: dict[str, int], wildcards: set[str] = frozenset()) -> Check:
    """The dry-run of the command schedules exactly ``expected`` jobs; ``wildcards`` lines appear in it."""

    def run(command: str, wd: Path) -> None:
        out = _snakemake(wd, command, "-n")
        assert out.startswith("exit 0") and _jobs(out) == expected, out[-3000:]
        found = set(re.findall(r"wildcards: (.*)", out))
        assert wildcards <= found, (wildcards - found, out[-3000:])

    return Check(run)


def _voc_root_unset(command: str, wd: Path) -> None:
    # the shipped config leaves datasets.voc.root unset: the README says to set it first
    out = _snakemake(wd, command, "-n")
    assert not out.startswith("exit 0") and "datasets.voc.root is not set in config.yaml" in out, out[-2000:]


def _rerun_incomplete(command: str, wd: Path) -> None:
    """A seeds_fine shard that Snakemake marked incomplete (as after a kill) is the one job rerun, with what
    reads it (finalize, its score, the alias); finished shards, stages and other variants are not."""
    entry = os.readlink(wd / "results/demo/seeds")  # store/seeds_fine/<key>
    key = entry.rsplit("/", 1)[-1]
    shard = f"results/demo/{entry}/shard-000.h5"
    marker = wd / ".snakemake/incomplete" / base64.urlsafe_b64encode(shard.encode()).decode()
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"external_jobid": None}))
    try:
        _dry_run_schedules({"seeds_fine": 1, "seeds_fine_finalize": 1, "score": 1, "alias": 1},
                           {f"dataset=demo, key={key}, shard=shard-000", "dataset=demo, alias=seeds"}).run(command, wd)
    finally:
        marker.unlink()


def _unlock(command: str, wd: Path) -> None:
    locks = wd / ".snakemake/locks"
    locks.mkdir(parents=True, exist_ok=True)
    (locks / "0.input.lock").write_text(str(wd / "results/demo/seeds") + "\n")  # as a killed run leaves it
    out = _snakemake(wd, command)
    assert out.startswith("exit 0") and not (locks.exists() and any(locks.iterdir())), out[-2000:]


def _config_demo(command: str, wd: Path) -> None:
    settings = json.loads(_fmwsss(wd, command))
    written = yaml.safe_load((wd / "config.yaml").read_text())["presets"]["demo"]
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    assert settings["sam"]["points_per_side"] == written["sam"]["points_per_side"]  # the preset's value
    assert "pred_iou_thresh" not in written["sam"]  # ... and a default the preset does not write
    sam_defaults = schema["$defs"]["settings"]["properties"]["sam"]["properties"]
    assert settings["sam"]["pred_iou_thresh"] == sam_defaults["pred_iou_thresh"]["default"]


def _status_demo(command: str, wd: Path) -> None:
    lines = _fmwsss(wd, command).splitlines()
    images = len(list((wd / "data/voc_sample/JPEGImages").glob("*.jpg")))
    assert lines[0].startswith(f"demo: {images} images in "), lines
    stages = dict(line.split()[:2] for line in lines[1:])
    assert all(line.endswith("  done") for line in lines[1:]), lines
    seeds = os.readlink(wd / "results/demo/seeds").split("/")  # store, seeds_fine, <key>
    assert stages[seeds[1]] == seeds[2], lines


def _overlay(command: str, wd: Path) -> None:
    photo = "data/voc_sample/JPEGImages/2007_000032.jpg"  # the README's placeholder image.jpg
    _fmwsss(wd, command.replace("image.jpg", photo))
    try:
        with Image.open(wd / "overlay.png") as out, Image.open(wd / photo) as img:
            assert out.format == "PNG" and out.width == img.width and out.height > img.height  # legend below
    finally:
        (wd / "overlay.png").unlink()


def _copy_profile(command: str, wd: Path) -> None:
    shutil.copytree(ROOT / "workflow/profiles", wd / "workflow/profiles")
    subprocess.run(command, shell=True, cwd=wd, check=True)
    copied = wd / "workflow/profiles/slurm-mysite/config.yaml"
    assert copied.read_text() == (ROOT / "workflow/profiles/slurm/config.yaml").read_text()


def _fill_profile(command: str, wd: Path) -> None:
    _copy_profile("cp -r workflow/profiles/slurm workflow/profiles/slurm-mysite", wd)
    subprocess.run(command, shell=True, cwd=wd, check=True)
    text = (wd / "workflow/profiles/slurm-mysite/config.yaml").read_text()
    assert not re.search(r"<(ACCOUNT|GPU_PARTITION|CPU_PARTITION)>", text), text
    profile = yaml.safe_load(text)
    assert profile["default-resources"]["slurm_account"] == "myproject"
    assert profile["default-resources"]["slurm_partition"] == "cpu"
    gpu_rules = {rule: res for rule, res in profile["set-resources"].items() if res.get("gpu")}
    assert gpu_rules and {res["slurm_partition"] for res in gpu_rules.values()} == {"gpu"}


def _cost_demo(command: str, wd: Path) -> None:
    """A projection for every stage and score job, each with the unit cost it was measured at; the demo's
    tiny models are called out."""
    from fmwsss.pipeline.cost import row_names

    out = _fmwsss(wd, command)
    assert "WARNING: demo ran with test models" in out, out
    table = out[out.index("\nstage "):].splitlines()[2:]
    assert {line.split()[0] for line in table if re.search(r" s/(image|iteration) ", line)} == set(row_names()), out


SEEDS_ALIASES = {f"dataset=demo, alias={a}" for a in ("sam_masks", "cams_coarse", "seeds_coarse", "cams_fine", "seeds")}

CHECKS: dict[str, Check] = {
    "snakemake --cores all results/voc/seeds": Check(_voc_root_unset),
    "snakemake --unlock --cores 1": Check(_unlock),
    "snakemake --cores all --rerun-incomplete results/demo/seeds": Check(_rerun_incomplete),
    "snakemake --cores all results/demo/seeds --forcerun alias": _dry_run_schedules({"alias": 5}, SEEDS_ALIASES),
    "fmwsss config demo": Check(_config_demo),
    "fmwsss status demo": Check(_status_demo),
    "fmwsss cost voc --from demo": Check(_cost_demo),
    "fmwsss overlay image.jpg results/demo/seeds/2007_000032.png -o overlay.png": Check(_overlay),
    "cp -r workflow/profiles/slurm workflow/profiles/slurm-mysite": Check(_copy_profile, needs_run=False),
    "sed -i 's/<ACCOUNT>/myproject/; s/<GPU_PARTITION>/gpu/; s/<CPU_PARTITION>/cpu/' "
    "workflow/profiles/slurm-mysite/config.yaml": Check(_fill_profile, needs_run=False),
}

SLURM = "cluster command: tests/slurm/test_slurm.py runs this profile on a real one-node SLURM cluster"
SKIPPED: dict[str, str] = {
    "make install": "installs the venv; CI (.ci/run) installs from scratch with it",
    "source .venv/bin/activate": "shell set-up: nothing to check",
    "make demo": "the demo pipeline: the session fixture demo_run runs its targets, tests/workflow checks them",
    "make test": "the test suite itself",
    "git clone <repo> && cd fmwsss": "placeholder <repo>; needs the network",
    "tmux new -s fmwsss": "a terminal multiplexer: nothing to check",
    "fmwsss report demo": "tests/workflow/test_report.py runs it on a copy of the demo run (10 s of thumbnails)",
    "fmwsss repair demo": "tests/workflow/test_repair.py runs it on a damaged copy of the demo run and checks the "
                          "recomputed shards, the bytes and the empty dry-run after it",
    "snakemake --report report.zip results/demo/report":
        "needs the built report: tests/workflow/test_report.py::test_snakemake_report_zip_holds_the_html_report_and_the_metrics",
    "fmwsss seed photo.jpg --tags cat,person -o seed.png --run results/voc --overlay overlay.png":
        "placeholders photo.jpg and results/voc (no VOC run here); tests/test_single_image.py runs the chain",
    "make rehearsal": "full-size models on a GPU machine (benchmarks/gpu_suite.sh runs it); "
                      "tests/workflow/test_rehearsal.py checks its plan",
    "make rehearsal SMOKE=1": "the GPU suite's smoke test (tests/benchmarks/test_bench_smoke.py) runs it on a copy "
                              "of the shared demo run",
    "fmwsss cost voc --gpus 4": "reads the rehearsal run; tests/workflow/test_cost.py runs `fmwsss cost voc --from demo "
                                "--gpus 4` on the shared demo run",
    "snakemake --profile workflow/profiles/slurm-mysite -n results/voc/seeds": SLURM,
    "snakemake --profile workflow/profiles/slurm-mysite results/voc/seeds": SLURM,
    "snakemake --profile workflow/profiles/slurm-mysite --rerun-incomplete results/voc/seeds": SLURM,
}


# --- tests --------------------------------------------------------------------------------------------------


def test_every_fenced_block_names_its_language():
    """An untagged block would hide its commands from this test."""
    blocks = fenced_blocks(README.read_text())
    assert blocks
    for language, line, _ in blocks:
        assert language in LANGUAGES, f"README.md:{line}: fenced block language {language!r} not in {LANGUAGES}"


def test_every_command_is_checked_or_skipped():
    commands = shell_commands(README.read_text())
    unknown = [c for c in commands if c not in CHECKS and c not in SKIPPED]
    assert not unknown, f"README commands neither in CHECKS nor in SKIPPED of {Path(__file__).name}: {unknown}"
    stale = (set(CHECKS) | set(SKIPPED)) - set(commands)
    assert not stale, f"entries for commands no longer in README.md: {sorted(stale)}"
    assert not set(CHECKS) & set(SKIPPED)
    assert all(SKIPPED.values())


def test_inline_fmwsss_commands_parse():
    """Every `fmwsss ...` span of the prose is a real sub-command with real options (a span that names a
    command without its required arguments, or with a `<placeholder>` for a choice, is fine)."""
    spans = inline_commands(README.read_text(), "fmwsss")
    assert spans
    for span in spans:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                build_parser().parse_args(shlex.split(span)[1:])
            except SystemExit:
                message = err.getvalue()
                placeholder = re.search(r"invalid choice: '<\w+>'", message)  # `<name>` where a choice goes
                assert "the following arguments are required" in message or placeholder, (span, message)


def test_snakemake_targets_are_not_swallowed_by_options():
    """Every results/... or <target> word of a README snakemake command reaches Snakemake as a target
    (options like --forcerun take every word after them)."""
    from snakemake.cli import get_argument_parser

    text = README.read_text()
    commands = [c for c in shell_commands(text) if c.startswith("snakemake ")] + inline_commands(text, "snakemake")
    parser = get_argument_parser()
    for command in commands:
        words = [w for w in shlex.split(command)[1:] if w != "..."]
        args = parser.parse_args(words)
        wanted = {w for w in words if w.startswith("results/") or re.fullmatch(r"<\w*target\w*>", w)}
        assert wanted <= set(args.targets), (command, wanted - set(args.targets))


@pytest.fixture(scope="module")
def readme_run(demo_attempt, tmp_path_factory) -> Workdir:
    return demo_attempt.get().copy(tmp_path_factory.mktemp("readme") / "wd")


@pytest.mark.e2e
@pytest.mark.parametrize("command", list(CHECKS))
def test_readme_command(command, request, tmp_path):
    check = CHECKS[command]
    wd = request.getfixturevalue("readme_run").path if check.needs_run else tmp_path
    check.run(command, wd)
