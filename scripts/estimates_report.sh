#!/usr/bin/env bash
# Regenerates reports/estimates/: the aggregation stand-in (64 features) on Tolokers and on a
# 5M-edge power-law graph, and a trained SMP INT2 model on Tolokers, at the balanced default design.
# Run from the repository root with QUAGGA_DATA_ROOT set (a few minutes on 2 cores).
set -euo pipefail
out=reports/estimates
model=runs/estimates/tolokers-smp-int2/model.qim
if [ ! -f "$model" ]; then
  quagga train --dataset Tolokers --model smp --bits 2 --epochs 2 --layers 4 --threads 1 --no-progress \
      --out runs/estimates/tolokers-smp-int2
fi
quagga estimate --dataset Tolokers --dataset synthetic:powerlaw:1000000:5000000 --workload aggregate --features 64 \
    --json $out/estimates.json --markdown $out/estimates.md --plot $out/estimates.png --roofline $out/roofline.png
quagga estimate "$model" --dataset Tolokers --json $out/model-tolokers-smp-int2.json \
    --markdown $out/model-tolokers-smp-int2.md --plot $out/model-tolokers-smp-int2.png \
    --roofline $out/model-tolokers-smp-int2-roofline.png
cat >> $out/estimates.md <<'MD'
## Trained model: SMP INT2 on Tolokers

The same design on the exported model itself (`quagga train --dataset Tolokers --model smp --bits 2 --epochs 2
--layers 4`, then `quagga estimate runs/estimates/tolokers-smp-int2/model.qim --dataset Tolokers`):
[model-tolokers-smp-int2.md](model-tolokers-smp-int2.md). Both written by `scripts/estimates_report.sh`.
MD
