#!/usr/bin/env bash
# Regenerates reports/estimates/: the aggregation stand-in (64 features) on Tolokers and on a
# 5M-edge power-law graph, and trained SMP INT2 models on Tolokers and on a 5M-edge power-law graph
# (200,000 nodes), at the balanced default design.
# Run from the repository root with QUAGGA_DATA_ROOT set and `python` the project's interpreter
# (about ten minutes on 2 cores when the models have to be trained).
set -euo pipefail
out=reports/estimates
model=runs/estimates/tolokers-smp-int2/model.qim
if [ ! -f "$model" ]; then
  quagga train --dataset Tolokers --model smp --bits 2 --epochs 2 --layers 4 --threads 1 --no-progress \
      --out runs/estimates/tolokers-smp-int2
fi
pl=runs/estimates/powerlaw5m.npz
if [ ! -f "$pl" ]; then  # 200,000 nodes, 5,000,000 distinct edges, 16 features, 4 classes
  python - "$pl" <<'PY'
import sys
import numpy as np
from sim.graphs.synthetic import synthetic_graph
n = 200_000
g = synthetic_graph(n, 5_000_000, kind="powerlaw", seed=0, duplicates=False, self_loops=False)
dst = np.repeat(np.arange(n), np.diff(g.indptr))
rng = np.random.default_rng(0)
y = rng.integers(0, 4, n)
x = (rng.random((n, 16)) + 0.5 * np.eye(4)[y].repeat(4, axis=1)).astype(np.float32)
np.savez(sys.argv[1], x=x, y=y, edge_index=np.stack([g.indices, dst]).astype(np.int64))
PY
fi
plmodel=runs/estimates/powerlaw5m-smp-int2/model.qim
if [ ! -f "$plmodel" ]; then
  quagga train --dataset "$pl" --model smp --bits 2 --epochs 2 --layers 2 --hidden 16 --threads 1 --no-progress \
      --out runs/estimates/powerlaw5m-smp-int2
fi
quagga estimate --dataset Tolokers --dataset synthetic:powerlaw:1000000:5000000 --workload aggregate --features 64 \
    --json $out/estimates.json --markdown $out/estimates.md --plot $out/estimates.png --roofline $out/roofline.png
quagga estimate "$model" --dataset Tolokers --json $out/model-tolokers-smp-int2.json \
    --markdown $out/model-tolokers-smp-int2.md --plot $out/model-tolokers-smp-int2.png \
    --roofline $out/model-tolokers-smp-int2-roofline.png
quagga estimate "$plmodel" --dataset "$pl" --json $out/model-powerlaw5m-smp-int2.json \
    --markdown $out/model-powerlaw5m-smp-int2.md --plot $out/model-powerlaw5m-smp-int2.png \
    --roofline $out/model-powerlaw5m-smp-int2-roofline.png
cat >> $out/estimates.md <<'MD'
## Trained models

The same design on exported models themselves, each on its own graph (self loops included):

* SMP INT2 on Tolokers (`quagga train --dataset Tolokers --model smp --bits 2 --epochs 2 --layers 4`, then
  `quagga estimate runs/estimates/tolokers-smp-int2/model.qim --dataset Tolokers`):
  [model-tolokers-smp-int2.md](model-tolokers-smp-int2.md).
* SMP INT2 on a 5M-edge power-law graph of 200,000 nodes (`runs/estimates/powerlaw5m.npz`, made by the
  script; `quagga train --dataset runs/estimates/powerlaw5m.npz --model smp --bits 2 --epochs 2 --layers 2
  --hidden 16`, then `quagga estimate runs/estimates/powerlaw5m-smp-int2/model.qim --dataset
  runs/estimates/powerlaw5m.npz`): [model-powerlaw5m-smp-int2.md](model-powerlaw5m-smp-int2.md).

All written by `scripts/estimates_report.sh`.
MD
