import h5py
import numpy as np
import pytest

from fmwsss.sam.encoding import unpack_masks
from fmwsss.sam.shards import SamShardReader, SamShardWriter
from fmwsss.sam.types import ImageMasks

SETTINGS = {"points_per_side": 4, "rsw_thresh": 0.3}


def _masks(n: int, h: int = 5, w: int = 7, seed: int = 0) -> ImageMasks:
    rng = np.random.default_rng(seed)
    masks = rng.random((n, h, w)) > 0.5
    return ImageMasks(masks=masks, level=rng.integers(0, 3, n), predicted_iou=rng.random(n),
                      stability=rng.random(n), bbox=rng.integers(0, 5, (n, 4)), area=masks.sum(axis=(1, 2)))


def _assert_equal(a: ImageMasks, b: ImageMasks) -> None:
    for name in ("masks", "level", "predicted_iou", "stability", "bbox", "area"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape, name
        np.testing.assert_array_equal(x, y, err_msg=name)


def test_round_trip_including_zero_masks(tmp_path):
    path = tmp_path / "shard.h5"
    items = {"2007_000032": _masks(6), "2007_000039": _masks(0, 9, 11), "2007_000042": _masks(1, seed=1)}
    with SamShardWriter(path, SETTINGS) as writer:
        for image_id, masks in items.items():
            writer.write(image_id, masks)
        writer.mark_complete(items)
    with SamShardReader(path) as reader:
        assert reader.ids() == sorted(items) and reader.settings == SETTINGS
        for image_id, masks in items.items():
            _assert_equal(reader.read(image_id), masks)
        assert reader.read("2007_000039").masks.shape == (0, 9, 11)
        with pytest.raises(KeyError, match="nope"):
            reader.read("nope")
    with h5py.File(path) as f:  # the on-disk contract of docs/architecture.md
        group = f["2007_000032"]
        assert (group.attrs["height"], group.attrs["width"]) == (5, 7) and group["masks"].dtype == np.uint8
        np.testing.assert_array_equal(unpack_masks(group["masks"][()], 5, 7), items["2007_000032"].masks)


def test_partial_file_is_refused_and_resumable(tmp_path):
    path = tmp_path / "shard.h5"
    writer = SamShardWriter(path, SETTINGS)
    writer.write("a", _masks(2))
    writer.close()
    with pytest.raises(ValueError, match="incomplete") as info:
        SamShardReader(path)
    assert str(path) in str(info.value)
    # A job killed mid-image leaves a temporary group behind: the next writer drops it.
    with h5py.File(path, "a") as f:
        f.create_group("__partial__b")
    writer = SamShardWriter(path, SETTINGS)
    assert writer.done_ids() == {"a"}
    with pytest.raises(ValueError, match="missing \\['b'\\]"):
        writer.mark_complete(["a", "b"])
    writer.write("b", _masks(3))
    with pytest.raises(ValueError, match="already in the shard"):
        writer.write("b", _masks(3))
    writer.mark_complete(["a", "b"])
    assert SamShardReader(path).ids() == ["a", "b"]


def test_writer_refuses_other_settings_and_bad_ids(tmp_path):
    path = tmp_path / "shard.h5"
    SamShardWriter(path, SETTINGS).close()
    with pytest.raises(ValueError, match="other settings"):
        SamShardWriter(path, {**SETTINGS, "rsw_thresh": None})
    with SamShardWriter(path, SETTINGS) as writer, pytest.raises(ValueError, match="HDF5 group"):
        writer.write("a/b", _masks(1))


def test_unreadable_partial_file_starts_afresh(tmp_path):
    path = tmp_path / "shard.h5"
    path.write_bytes(b"half-written garbage")
    with pytest.warns(UserWarning, match="starting it again"):
        writer = SamShardWriter(path, SETTINGS)
    assert writer.done_ids() == set()
    writer.close()
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        SamShardReader(tmp_path / "missing.h5")
