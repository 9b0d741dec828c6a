import argparse
from pathlib import Path

from fmwsss.cli.data import register


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fmwsss")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_help_on_every_flag():
    parser = _parser()
    data = parser._subparsers._group_actions[0].choices["data"]
    for name, sub in data._subparsers._group_actions[0].choices.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings} has no help"


def test_voc_and_coco_sample(voc_sample: Path, coco_sample: Path, tmp_path: Path, capsys):
    args = _parser().parse_args(["data", "voc-sample", "--source", str(voc_sample), "--dest", str(tmp_path / "v")])
    assert args.func(args) == 0
    assert "fetched 24 images" in capsys.readouterr().out
    assert args.func(args) == 0
    assert "already holds all 24" in capsys.readouterr().out
    args = _parser().parse_args(["data", "coco-sample", "--source", str(coco_sample), "--dest", str(tmp_path / "c")])
    assert args.func(args) == 0
    assert "fetched 12 images" in capsys.readouterr().out
    assert _parser().parse_args(["data", "voc-sample", "--source", "x"]).dest == Path("data/voc_sample")
