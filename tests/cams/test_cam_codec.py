"""CAM storage codec: any magnitude keeps ~3 significant digits, zeros stay zeros, through the shard files too."""
import numpy as np
import pytest

from fmwsss.cams import codec
from fmwsss.cams.shards import CamShardError, CamShardReader, CamShardWriter

MAGNITUDES = 10.0 ** np.arange(-10, 5)  # 1e-10 ... 1e4


def _maps(rng: np.random.Generator) -> np.ndarray:
    """One (5, 7) map per magnitude m: signed values with |x| log-uniform over m*[1e-8, 1], a few exact zeros."""
    p = len(MAGNITUDES)
    mag = 10.0 ** rng.uniform(-8, 0, size=(p, 5, 7)) * MAGNITUDES[:, None, None]
    x = (mag * rng.choice([-1.0, 1.0], size=mag.shape)).astype(np.float32)
    x[:, 0, 0] = MAGNITUDES  # the map's largest magnitude
    x[:, 1, :3] = 0.0
    return x


def _check(x: np.ndarray, y: np.ndarray) -> None:
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(y == 0, x == 0)  # zeros stay zeros, nothing else becomes zero
    nz = x != 0
    rel = np.abs(y[nz].astype(np.float64) - x[nz]) / np.abs(x[nz])
    assert rel.max() <= 1e-3


def test_round_trip_keeps_three_digits_at_every_magnitude():
    x = _maps(np.random.default_rng(0))
    _check(x, codec.round_trip(x))


def test_plain_float16_fails_the_same_check():
    """The check has teeth: the former storage (a float16 cast) loses the small magnitudes."""
    x = _maps(np.random.default_rng(0))
    with pytest.raises(AssertionError):
        _check(x, x.astype(np.float16).astype(np.float32))


def test_hand_computed_encoding():
    x = np.array([[[0.0, 1e-7], [-2e-7, 5e-8]], [[0.0, 0.0], [0.0, 0.0]]], np.float32)
    maps, scale = codec.encode(x)
    assert maps.dtype == np.float16 and scale.dtype == np.float32
    np.testing.assert_array_equal(scale, np.float32([2e-7, 0.0]))
    np.testing.assert_array_equal(maps[0], np.float16([[0.0, 16384.0], [-32768.0, 8192.0]]))
    np.testing.assert_array_equal(maps[1], 0)
    np.testing.assert_array_equal(codec.decode(maps, scale), x)  # powers-of-two ratios: exact


def test_empty_and_bad_input():
    maps, scale = codec.encode(np.zeros((0, 3, 4), np.float32))
    assert maps.shape == (0, 3, 4) and scale.shape == (0,)
    assert codec.decode(maps, scale).shape == (0, 3, 4)
    with pytest.raises(ValueError, match="NaN or inf"):
        codec.encode(np.array([[[np.nan]]], np.float32))


def test_shard_round_trip(tmp_path):
    x = _maps(np.random.default_rng(1))
    classes = np.arange(1, len(MAGNITUDES) + 1)
    writer = CamShardWriter(tmp_path / "p.h5", tmp_path / "s.h5", {})
    writer.write_cams("a", x, -x, classes, 80, 112, 16)
    with pytest.raises(ValueError, match=r"image 'b': cam_caa: .*NaN"):
        writer.write_cams("b", x, np.full_like(x, np.inf), classes, 80, 112, 16)
    final = writer.finish(["a"])
    with CamShardReader(final) as reader:
        rec = reader.read("a")
    _check(x, rec.cam_raw)
    _check(-x, rec.cam_caa)


def test_reader_refuses_unscaled_float16_shard(tmp_path):
    import h5py

    path = tmp_path / "old.h5"
    with h5py.File(path, "w") as fh:
        g = fh.create_group("a")
        g["cam_raw"] = g["cam_caa"] = np.zeros((1, 2, 2), np.float16)
        g["classes"] = np.array([1], np.int16)
        g.attrs.update({"height": 32, "width": 32, "stride": 16})
        fh.attrs["complete"] = True
        fh.attrs["settings"] = "{}"
    with CamShardReader(path) as reader, pytest.raises(CamShardError, match="old.h5.*no per-map scales"):
        reader.read("a")
