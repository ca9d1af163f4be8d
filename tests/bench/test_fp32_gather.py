"""Our own FP32 sixteen-edge gather kernels (quagga.bench.fp32_gather) agree with
torch.sparse.mm and with the row-vector FP32 kernels to float tolerance (empty rows, a hub
row, uint16 and int32 indices)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quagga.bench.fp32_gather import smp_gap_f32_gather, smp_prop_f32_gather, spmm_f32_gather
from quagga.bench.fp32_spmm import smp_gap_f32, smp_prop_f32


def _graph(n: int, seed: int):
    rng = np.random.default_rng(seed)
    deg = rng.integers(0, 40, n)
    deg[::7] = 0
    deg[3] = 300                                   # a hub row: many vectors of sixteen edges
    indptr = np.concatenate([[0], np.cumsum(deg)]).astype(np.int64)
    indices = rng.integers(0, n, int(indptr[-1]))
    w = rng.random(indices.size).astype(np.float32)
    return indptr, indices, w


@pytest.mark.parametrize("f", [1, 2, 5, 16])
@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_gather_kernels_match_torch_and_row_kernels(f, dtype):
    n = 200
    indptr, indices, w = _graph(n, f)
    rng = np.random.default_rng(f + 1)
    x = rng.standard_normal((n, f)).astype(np.float32)
    h0 = rng.standard_normal((n, f)).astype(np.float32)
    ix = indices.astype(dtype)
    a = torch.sparse_csr_tensor(torch.from_numpy(indptr), torch.from_numpy(indices),
                                torch.from_numpy(w), size=(n, n))
    ref = torch.sparse.mm(a, torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(spmm_f32_gather(indptr, ix, w, x), ref, rtol=1e-5, atol=1e-4)
    xt, g = smp_prop_f32_gather(indptr, ix, w, x, h0, 0.1)
    xt2, g2 = smp_prop_f32(indptr, ix, w, x, h0, 0.1, 64)
    np.testing.assert_allclose(xt, xt2, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(g, g2, rtol=1e-5, atol=1e-4)
    for paper_code in (False, True):
        np.testing.assert_allclose(smp_gap_f32_gather(indptr, ix, w, g2, xt2, 0.3, paper_code),
                                   smp_gap_f32(indptr, ix, w, g2, xt2, 0.3, paper_code, 64),
                                   rtol=1e-5, atol=1e-4)
