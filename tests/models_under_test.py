"""The models the per-model tests sweep.

Faults live in a model's blocks and layers (the builder, registry and trainer are shared), so the
tests take one model of each block and layer kind. MOBILENETS_EVERY_MODEL=1 sweeps every
registered model instead, the benchmark-length run: `python benchmarks/every_model.py`.
"""

import os

from mobilenets import list_models

# model -> what it alone brings to the sweep
REPRESENTATIVE = {
    "mobilenetv1": "depthwise-separable blocks",
    "mobilenetv2": "dense inverted residuals, the keras.applications twin",
    "mobilenetv2_lgc": "learned group convs, condensation, the gather-free deployed forms",
    "mobilenetv2_gc_lgc": "a standard group-conv expansion before a learned-group projection",
    "mobilenetv3_small": "squeeze-excite, h-swish and hard sigmoid (int8 folds)",
    "igcv3": "interleaved group convs and channel shuffles (folded into weights)",
    "mobilenetv4_conv_small": "universal and fused inverted bottlenecks",
    "mobilenetv4_hybrid_large": "Mobile MQA attention, layer scale, GELU",
}


def models_under_test(leave_out=()):
    """Every registered model with MOBILENETS_EVERY_MODEL=1, else the REPRESENTATIVE ones but `leave_out`
    (models whose kind another sweep of the same path already covers)."""
    if os.environ.get("MOBILENETS_EVERY_MODEL"):
        return list_models()
    missing = sorted(set(REPRESENTATIVE) - set(list_models()))
    assert not missing, f"REPRESENTATIVE names unregistered models: {missing}"
    return [name for name in list_models() if name in REPRESENTATIVE and name not in leave_out]
