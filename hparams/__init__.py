"""Hyperparameters: typed configs, named presets (one per published recipe) and overrides.

    from hparams import get_preset, apply_overrides, Config
    cfg = get_preset("cifar100_mobilenetv2_lgc")
    cfg = apply_overrides(cfg, ["optimizer.lr=0.2", "schedule.epochs=3"])
    cfg.save("runs/x/config.json");  Config.load("runs/x/config.json") == cfg

Pure Python (no TensorFlow import). Every user mistake raises
`mobilenets.errors.ConfigError` with a one-line message naming the valid choices.
"""

from .config import (
    DATASET_NUM_CLASSES,
    LGC_MODEL_NAMES,
    MODEL_NAMES,
    SECTIONS,
    Config,
    DataConfig,
    FinetuneConfig,
    LGCConfig,
    ModelConfig,
    OptimizerConfig,
    RegularizationConfig,
    RunConfig,
    ScheduleConfig,
)
from .overrides import apply_overrides, parse_override, valid_keys
from .presets import (
    DEFAULT_PRESET_FOR_MODEL,
    default_preset_for_model,
    default_preset_name,
    describe_preset,
    get_preset,
    list_presets,
    register_preset,
    summarize_preset,
)

__all__ = [
    "Config", "ModelConfig", "DataConfig", "OptimizerConfig", "ScheduleConfig", "RegularizationConfig",
    "LGCConfig", "RunConfig", "FinetuneConfig", "SECTIONS", "MODEL_NAMES", "LGC_MODEL_NAMES", "DATASET_NUM_CLASSES",
    "apply_overrides", "parse_override", "valid_keys",
    "get_preset", "list_presets", "describe_preset", "summarize_preset", "register_preset",
    "default_preset_for_model", "default_preset_name", "DEFAULT_PRESET_FOR_MODEL",
]
