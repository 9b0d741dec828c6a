import numpy as np
import pytest
import torch

from fmwsss.sam.encoding import pack_masks, pack_masks_torch, unpack_masks, unpack_masks_torch
from fmwsss.sam.types import ImageMasks


def test_pack_round_trip_odd_size():
    masks = np.random.default_rng(0).random((5, 7, 9)) > 0.5  # 63 px: last byte partly padding
    packed = pack_masks(masks)
    assert packed.dtype == np.uint8 and packed.shape == (5, 8)
    np.testing.assert_array_equal(unpack_masks(packed, 7, 9), masks)


def test_pack_is_row_major_packbits():
    masks = np.zeros((1, 2, 8), bool)
    masks[0, 0, 0] = masks[0, 1, 7] = True
    np.testing.assert_array_equal(pack_masks(masks), [[0b1000_0000, 0b0000_0001]])


def test_pack_empty_and_bad_shape():
    assert pack_masks(np.zeros((0, 4, 5), bool)).shape == (0, 3)
    assert unpack_masks(np.zeros((0, 3), np.uint8), 4, 5).shape == (0, 4, 5)
    with pytest.raises(ValueError, match="4x5"):
        unpack_masks(np.zeros((1, 2), np.uint8), 4, 5)


def test_image_masks_casts_and_empty():
    m = ImageMasks(masks=np.ones((2, 3, 4)), level=[0, 2], predicted_iou=[0.5, 1], stability=[1, 1],
                   bbox=[[0, 0, 3, 2]] * 2, area=[12, 12])
    assert (m.masks.dtype, m.level.dtype, m.bbox.dtype, m.area.dtype) == (bool, np.int8, np.int32, np.int64)
    assert (len(m), m.height, m.width) == (2, 3, 4)
    empty = ImageMasks.empty(3, 4)
    assert empty.masks.shape == (0, 3, 4) and empty.bbox.shape == (0, 4)


@pytest.mark.parametrize("shape", [(5, 7, 9), (3, 4, 8), (0, 4, 5), (2, 1, 1)])
def test_torch_packing_gives_the_numpy_bytes(shape):
    masks = np.random.default_rng(1).random(shape) > 0.5
    packed = pack_masks_torch(torch.from_numpy(masks))
    assert packed.dtype == torch.uint8
    np.testing.assert_array_equal(packed.numpy(), pack_masks(masks))
    np.testing.assert_array_equal(unpack_masks_torch(packed, *shape[1:]).numpy(), masks)
    with pytest.raises(ValueError, match="do not fit"):
        unpack_masks_torch(packed, shape[1] + 1, shape[2] + 8)
