"""The resumable per-image HDF5 shard writer shared by the CAM and seed stages."""
from __future__ import annotations

import numpy as np
import pytest

from fmwsss.io.shards import GroupShardWriter, IncompleteShardError, ShardError, open_complete, require_complete


def test_commit_resume_finish(tmp_path):
    partial, final = tmp_path / "p.h5", tmp_path / "f.h5"
    with GroupShardWriter(partial, final, {"gamma": 0.7}) as writer:
        writer.write("a", {"labels": np.ones((2, 3), np.uint8)}, {"height": 2})
    with pytest.raises(IncompleteShardError, match="incomplete"):
        require_complete(partial)
    with GroupShardWriter(partial, final, {"gamma": 0.7}) as writer:
        assert writer.done == {"a"}
        with pytest.raises(ShardError, match="already written"):
            writer.write("a", {"labels": np.zeros((2, 3), np.uint8)}, {})
        with pytest.raises(ShardError, match="images missing"):
            writer.finish(["a", "b"])
        writer.write("b", {"labels": np.zeros((1, 1), np.uint8)}, {})
        assert writer.finish(["a", "b"]) == final
    assert not partial.exists()
    with open_complete(final) as fh:
        assert sorted(fh) == ["a", "b"] and fh["a"]["labels"][()].sum() == 6 and fh["a"].attrs["height"] == 2


def test_resume_with_other_settings_is_refused(tmp_path):
    with GroupShardWriter(tmp_path / "p.h5", tmp_path / "f.h5", {"gamma": 0.7}) as writer:
        writer.write("a", {"labels": np.ones((1, 1), np.uint8)}, {})
    with pytest.raises(ShardError, match="other settings"):
        GroupShardWriter(tmp_path / "p.h5", tmp_path / "f.h5", {"gamma": 0.6})
