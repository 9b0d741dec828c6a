"""Snakemake's incomplete markers, as ``fmwsss status`` reads them (fmwsss.pipeline.snakemake_state)."""
from __future__ import annotations

import base64

from fmwsss.pipeline.snakemake_state import is_incomplete


def test_a_marker_named_as_snakemake_names_it_marks_only_its_output(tmp_path):
    output = "results/mini/store/seeds_fine/0990f32e5a0c2c6b/spec.json"
    assert not is_incomplete(output, tmp_path)  # no .snakemake folder at all
    name = base64.urlsafe_b64encode(output.encode()).decode()  # short enough for one folder level
    (tmp_path / ".snakemake" / "incomplete").mkdir(parents=True)
    (tmp_path / ".snakemake" / "incomplete" / name).write_text('{"external_jobid": null}')
    assert is_incomplete(output, tmp_path)
    assert not is_incomplete(output.replace("seeds_fine", "seeds_coarse"), tmp_path)


def test_a_long_output_path_is_split_into_folder_levels(tmp_path):
    output = "results/" + "x" * 300 + "/spec.json"
    name = base64.urlsafe_b64encode(output.encode()).decode()
    first, rest = name[:254], name[254:]  # NAME_MAX 255: levels of 254 characters, all but the last with "@"
    marker = tmp_path / ".snakemake" / "incomplete" / f"@{first}" / rest
    marker.parent.mkdir(parents=True)
    marker.write_text("{}")
    assert is_incomplete(output, tmp_path)
