"""The exported model file: round trip, and refusal of corrupt, truncated, foreign files."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

from quant import model_ir
from quant.model_ir import ModelFileError, graph_hash
from training import integer
from training.lowering import lower


@pytest.fixture(scope="module")
def exported(tiny_smp, tmp_path_factory):
    d, g, res = tiny_smp
    im = lower(res.model, g, num_features=d.num_features, normalize=d.normalize)
    path = model_ir.save(im, tmp_path_factory.mktemp("export") / "model.qim")
    return d, g, im, path


def test_round_trip_predictions_identical(exported):
    d, g, im, path = exported
    loaded = model_ir.load(path, expect_graph_hash=im.graph["hash"])
    before = integer.predict(im, d.x)
    assert torch.equal(integer.predict(loaded, d.x), before)
    assert np.array_equal(loaded.predict(d.x.numpy()), before.numpy())


def test_flipped_byte_refused(exported, tmp_path):
    *_, path = exported
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    bad = tmp_path / "flipped.qim"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum"):
        model_ir.load(bad)


def test_truncated_refused(exported, tmp_path):
    *_, path = exported
    bad = tmp_path / "short.qim"
    bad.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match="corrupt or truncated"):
        model_ir.load(bad)


def test_wrong_version_refused(exported, tmp_path):
    d, g, im, path = exported
    import hashlib
    body = path.read_bytes()[:-32]
    start = len(model_ir.MAGIC) + 4
    (hlen,) = struct.unpack("<I", body[len(model_ir.MAGIC):start])
    header = json.loads(body[start:start + hlen])
    header["contract_version"] = 999
    hb = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    new = model_ir.MAGIC + struct.pack("<I", len(hb)) + hb + body[start + hlen:]
    bad = tmp_path / "version.qim"
    bad.write_bytes(new + hashlib.sha256(new).digest())
    with pytest.raises(ModelFileError, match="contract_version"):
        model_ir.load(bad)


def test_different_graph_refused(exported):
    d, g, im, path = exported
    other = g.edge_index.numpy()[:, 1:]
    with pytest.raises(ModelFileError, match="graph hash"):
        model_ir.load(path, expect_graph_hash=graph_hash(other, g.num_nodes, d.num_features))
