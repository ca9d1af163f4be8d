"""The seed paper's published numbers, held once for every report and experiment.

Wang et al., "Low-bit Quantization for Deep Graph Neural Networks with Smoothness-aware
Message Propagation", CIKM 2023 (arXiv 2308.14949).
"""

from __future__ import annotations

__all__ = ["CORA_TEST_ACCURACY", "SPEEDUP_VS_FP32", "accuracy_by_tag"]

#: Cora test accuracy at best validation, %, from the authors' notebook: one random split of
#: 20 labels per class / 500 validation / 1000 test nodes, SMP with K = 10.
CORA_TEST_ACCURACY = {"FP32": 82.8, "INT8": 82.1, "INT4": 81.0, "INT2": 73.3, "INT2-BT": 75.6,
                      "INT2-BT*": 77.8}

#: Inference speed-up over full precision claimed in the abstract, by feature bit width (how
#: it was measured is not published).
SPEEDUP_VS_FP32 = {2: 5.11, 4: 4.70}

_TAGS = {"fp32": "FP32", "int8": "INT8", "int4": "INT4", "int2": "INT2", "int2-bt": "INT2-BT",
         "int2-sbt": "INT2-BT*"}


def accuracy_by_tag() -> dict[str, float]:
    """:data:`CORA_TEST_ACCURACY` keyed by the run tags of the reports (``fp32``, ...,
    ``int2-sbt`` for BT*)."""
    return {tag: CORA_TEST_ACCURACY[label] for tag, label in _TAGS.items()}
