import hashlib

import pytest

from fmwsss.data.shards import ids_digest, shard_ids, shard_name


def test_shard_ids():
    ids = [f"i{k}" for k in range(7)]
    assert shard_ids(ids, 3) == [["i0", "i1", "i2"], ["i3", "i4", "i5"], ["i6"]]
    assert shard_ids(ids, 100) == [ids]
    assert shard_ids([], 3) == []
    with pytest.raises(ValueError):
        shard_ids(ids, 0)


def test_ids_digest_and_names():
    assert ids_digest(["a", "b"]) == hashlib.sha256(b"a\nb").hexdigest()[:16]
    assert ids_digest(["a", "b"]) != ids_digest(["b", "a"])
    assert len(ids_digest([])) == 16
    assert shard_name(0) == "shard-000" and shard_name(12) == "shard-012"
