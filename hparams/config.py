"""Typed, validated training configs: one frozen dataclass per section, and `Config` holding them.

Each value lives in exactly one place:

    model           architecture arguments (incl. dropout, groups, condense factor)
    data            dataset, input pipeline, augmentation
    optimizer       optimizer and its own constants (learning rate, momentum, ...)
    schedule        epochs, batch size, learning-rate schedule
    regularization  weight decay, label smoothing, weight EMA (loss/update terms, not architecture)
    lgc             learned-group-convolution training (group lasso, condensation schedule)
    run             where and how a run executes (run dir, seed, strategy, precision, logging)

Instances are immutable and always valid: every constructor (direct, `from_dict`,
`dataclasses.replace`, `apply_overrides`) checks types and values and raises
`mobilenets.errors.ConfigError` with a one-line message on the first problem.
Change a config with `hparams.apply_overrides` or `dataclasses.replace`.
"""

import dataclasses
import difflib
import functools
import json
import os
import typing
from typing import Literal, Optional, Tuple

from mobilenets.errors import ConfigError
from mobilenets.models import zoo

from .fields import check_value

MODEL_NAMES = tuple(zoo.MODELS)
LGC_MODEL_NAMES = zoo.LEARNED_GROUP_MODELS

# Class count of each dataset (None: read from the data at run time, or for 'synthetic' any count,
# 10 unless model.num_classes says otherwise). `ModelConfig.num_classes=None` means "take it from here".
DATASET_NUM_CLASSES = {
    "cifar10": 10,
    "cifar100": 100,
    "imagenet": 1000,
    "synthetic": 10,
    "folder": None,  # ROOT/train/<class>/*.jpg, ROOT/validation/<class>/*.jpg
    "npz": None,  # arrays x (N, H, W, 3) uint8 and y (N,) in a .npz file
}
# Datasets with no default location: data.data_dir must say where they are.
DATASETS_NEEDING_DATA_DIR = ("folder", "npz")

ModelName = Literal[MODEL_NAMES]
DatasetName = Literal[tuple(DATASET_NUM_CLASSES)]


def _key(section, name):
    return f"{section}.{name}" if section else name


def did_you_mean(word, choices):
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@functools.lru_cache(maxsize=None)
def field_types(cls):
    """{field name: annotated type} of a config dataclass."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


class _Section:
    """Shared behaviour: type-check and normalise every field, then `_check()` the values."""

    SECTION = ""

    def __post_init__(self):
        for name, tp in field_types(type(self)).items():
            object.__setattr__(self, name, check_value(_key(self.SECTION, name), tp, getattr(self, name)))
        self._check()

    def _check(self):
        pass

    def _require(self, ok, name, wanted):
        """Raises ConfigError `section.name must be <wanted>; got <value>` unless `ok`."""
        if not ok:
            value = getattr(self, name)
            raise ConfigError(f"{_key(self.SECTION, name)} must be {wanted}; got {value!r}")

    def to_dict(self):
        return {name: list(v) if isinstance(v, tuple) else v for name, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data, base=None):
        """Strict: unknown keys and wrong types raise ConfigError. Missing keys come from `base` or defaults."""
        if not isinstance(data, dict):
            raise ConfigError(
                f"section {cls.SECTION!r} must be a mapping of key: value; got {type(data).__name__}"
            )
        valid = field_types(cls)
        for name in data:
            if name not in valid:
                raise ConfigError(
                    f"unknown key {_key(cls.SECTION, str(name))!r}{did_you_mean(str(name), valid)}; "
                    f"valid keys of {cls.SECTION!r}: {', '.join(sorted(valid))}"
                )
        values = {} if base is None else dict(vars(base))
        values.update(data)
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class ModelConfig(_Section):
    """Architecture arguments, passed to the model builder.

    name: one of MODEL_NAMES. width_multiplier: channel multiplier alpha (MobileNetV1 sec. 4.2).
    dropout: drop rate before the classifier (the TF LGC seed's keep_prob 0.9 is dropout 0.1).
    config: 'imagenet' (stride-2 stem, 224x224 inputs) or 'cifar' (stride-1 stem and early
    stages, as in the TF LGC seed, for 32x32 inputs). input_size: square input side in pixels.
    num_classes: classifier width; None takes it from the dataset (DATASET_NUM_CLASSES).
    expansion: inverted-residual expansion t for every block; None keeps the paper's table.
    groups: groups of group/learned-group convolutions (GC, LGC, IGCV3); None is the model's default.
    condense_factor: LGC condense factor C (each group finally keeps 1/C of its inputs); None is
    the model's default (build_model needs an int: drop the key when None). normalization, the
    model's first layer on raw [0, 255] RGB pixels: 'inception' (x / 127.5 - 1, as
    keras.applications), 'imagenet' / 'cifar10' / 'cifar100' (that dataset's per-channel
    mean / std), 'none'. bn_momentum: BatchNorm moving-average momentum in Keras' convention
    (PyTorch's momentum m is 1 - m here: torch's default 0.1 is 0.9). weights: start from
    pretrained weights: 'imagenet' (keras.applications' download), a keras.applications .h5
    file, or a run directory of ours; the classifier ('logits') is new unless the classes are
    ImageNet's 1000. LGC models take MobileNetV2's (each LGC kernel is a masked dense kernel).
    drop_path_rate: stochastic depth (Huang et al. 2016) of the last block; block i of N drops
    its residual branch at drop_path_rate * i / N in training (the Model Garden's linear rule).
    bn_epsilon (keras.applications' 1e-3) and padding ('same': TensorFlow's, 'symmetric': PyTorch's) of
    the model's BatchNorms and strided convs; weights of timm's (a .safetensors file or hub id) set them
    to 1e-5 / 'symmetric', the normalization to the checkpoint's ('unit': x / 255) and, unless the command
    sets it, input_size to the checkpoint's (mobilenets.training.settings).
    The names match `mobilenets.models.registry.build_model`'s keyword arguments (input_size is
    input_shape=(input_size, input_size, 3)).
    """

    SECTION = "model"
    name: ModelName = "mobilenetv2"
    width_multiplier: float = 1.0
    dropout: float = 0.0
    config: Literal["imagenet", "cifar"] = "imagenet"
    input_size: int = 224
    num_classes: Optional[int] = None
    expansion: Optional[float] = None
    groups: Optional[int] = None
    condense_factor: Optional[int] = None
    normalization: Literal["inception", "imagenet", "cifar10", "cifar100", "unit", "none"] = "inception"
    bn_momentum: float = 0.99
    weights: Optional[str] = None
    drop_path_rate: float = 0.0
    bn_epsilon: float = 1e-3
    padding: Literal["same", "symmetric"] = "same"

    def _check(self):
        self._require(self.weights is None or self.weights != "", "weights",
                      "'imagenet', a keras.applications .h5 file, a run directory of ours or null")
        self._require(self.width_multiplier > 0, "width_multiplier", "> 0")
        self._require(0 <= self.dropout < 1, "dropout", "in [0, 1) (a drop rate, 1 - keep_prob)")
        self._require(self.input_size >= 1, "input_size", ">= 1")
        self._require(self.num_classes is None or self.num_classes >= 2, "num_classes", ">= 2 or null")
        self._require(self.expansion is None or self.expansion > 0, "expansion", "> 0 or null")
        self._require(self.groups is None or self.groups >= 1, "groups", ">= 1 or null")
        self._require(self.condense_factor is None or self.condense_factor >= 1, "condense_factor", ">= 1 or null")
        self._require(0 <= self.bn_momentum < 1, "bn_momentum", "in [0, 1)")
        self._require(0 <= self.drop_path_rate < 1, "drop_path_rate", "in [0, 1) (0 turns stochastic depth off)")
        self._require(self.bn_epsilon > 0, "bn_epsilon", "> 0")

    @property
    def is_lgc(self):
        """True for the models with learned group convolutions (the `lgc` section applies)."""
        return self.name in LGC_MODEL_NAMES


@dataclasses.dataclass(frozen=True)
class DataConfig(_Section):
    """Dataset and input pipeline.

    dataset: 'cifar10', 'cifar100', 'imagenet', 'synthetic' (generated images, for smoke runs),
    'folder' (class-per-subfolder images) or 'npz' (arrays x, y): see DATASET_NUM_CLASSES.
    data_dir: where the dataset lives or is downloaded; None is the library's default (not
    allowed for 'folder' and 'npz'). augmentation: 'none'; 'flip' (horizontal flip only);
    'cifar' (4-pixel pad, random crop, horizontal flip);
    'inception' (random-resized crop + horizontal flip, the usual ImageNet training augmentation).
    validation_fraction: fraction of the training split held out for validation; 0 evaluates on
    the official test/validation split (as the papers report). A training command on a flat
    'folder' tree that leaves it unset holds out 0.2 (mobilenets/training/settings.py). cache: keep decoded examples in
    memory. shuffle_buffer: examples in the shuffle buffer. eval_crop_fraction: central crop kept
    before resizing at evaluation (0.875 for ImageNet; 1.0 keeps the whole image).
    synthetic_examples: examples per epoch of the 'synthetic' dataset.

    Extra training augmentations, after `augmentation` (mobilenets/data/augment.py, autoaugment.py,
    mixing.py; each off at its default): auto_augment: 'none'; 'autoaugment' (the ImageNet
    policy of Cubuk et al. 2019); 'randaugment' (Cubuk et al. 2020, timm's definition:
    randaugment_layers ops N per image, each applied with probability 0.5, at
    randaugment_magnitude M on the 0..10 scale, plus Gaussian noise of randaugment_magnitude_std).
    random_erasing: probability of erasing one random rectangle (Zhong et al. 2020) of
    random_erasing_min_area..random_erasing_max_area of the image with random pixels.
    mixup_alpha / cutmix_alpha: Beta(alpha, alpha) of Mixup (Zhang et al. 2018) / CutMix (Yun et
    al. 2019) on the batch, 0 = off; mix_probability: chance a batch is mixed;
    mix_switch_probability: chance of CutMix rather than Mixup when both are on. With either on,
    labels become soft (regularization.label_smoothing is applied before mixing).
    """

    SECTION = "data"
    dataset: DatasetName = "imagenet"
    data_dir: Optional[str] = None
    augmentation: Literal["none", "flip", "cifar", "inception"] = "inception"
    validation_fraction: float = 0.0
    cache: bool = False
    shuffle_buffer: int = 10000
    eval_crop_fraction: float = 0.875
    synthetic_examples: int = 512
    auto_augment: Literal["none", "autoaugment", "randaugment"] = "none"
    randaugment_layers: int = 2
    randaugment_magnitude: float = 9.0
    randaugment_magnitude_std: float = 0.0
    random_erasing: float = 0.0
    random_erasing_min_area: float = 0.02
    random_erasing_max_area: float = 0.33
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_probability: float = 1.0
    mix_switch_probability: float = 0.5

    def _check(self):
        self._require(self.data_dir is None or self.data_dir != "", "data_dir", "a path or null")
        self._require(self.data_dir is not None or self.dataset not in DATASETS_NEEDING_DATA_DIR, "data_dir",
                      f"the path of the {self.dataset!r} dataset (data.data_dir=PATH)")
        self._require(0 <= self.validation_fraction < 1, "validation_fraction", "in [0, 1)")
        self._require(self.shuffle_buffer >= 1, "shuffle_buffer", ">= 1")
        self._require(0 < self.eval_crop_fraction <= 1, "eval_crop_fraction", "in (0, 1]")
        self._require(self.synthetic_examples >= 1, "synthetic_examples", ">= 1")
        self._require(1 <= self.randaugment_layers <= 10, "randaugment_layers", "in [1, 10] (ops per image)")
        self._require(0 <= self.randaugment_magnitude <= 10, "randaugment_magnitude",
                      "in [0, 10] (10 is the strongest)")
        self._require(self.randaugment_magnitude_std >= 0, "randaugment_magnitude_std", ">= 0")
        self._require(0 <= self.random_erasing <= 1, "random_erasing", "a probability in [0, 1]")
        self._require(0 < self.random_erasing_min_area <= self.random_erasing_max_area, "random_erasing_min_area",
                      f"in (0, random_erasing_max_area={self.random_erasing_max_area:g}]")
        self._require(self.random_erasing_max_area < 1, "random_erasing_max_area",
                      "in (0, 1) (a fraction of the image)")
        self._require(self.mixup_alpha >= 0, "mixup_alpha", ">= 0 (0 turns Mixup off)")
        self._require(self.cutmix_alpha >= 0, "cutmix_alpha", ">= 0 (0 turns CutMix off)")
        self._require(0 <= self.mix_probability <= 1, "mix_probability", "a probability in [0, 1]")
        self._require(0 <= self.mix_switch_probability <= 1, "mix_switch_probability", "a probability in [0, 1]")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig(_Section):
    """Optimizer.

    name: 'sgd', 'adam', 'adamw' or 'rmsprop'. 'adamw' is Adam with decoupled weight decay
    (Loshchilov & Hutter 2019, tf_keras AdamW): regularization.weight_decay then shrinks the
    weights by lr * weight_decay * w each step (lr-scaled, as PyTorch's and the TF Model Garden's
    AdamW) instead of entering the loss as an L2 penalty. lr: peak learning rate (reached after
    warm-up) for `schedule.batch_size`. momentum: SGD / RMSProp momentum; Adam's beta_1. nesterov: Nesterov
    momentum (SGD only). rho: RMSProp's moving-average decay (RMSProp only). epsilon: RMSProp /
    Adam epsilon with tf_keras semantics (RMSProp adds it *inside* the square root, as TF does;
    PyTorch's eps sits outside: torchvision's 0.0316 corresponds to about 1e-3 here).
    clipnorm: clip each gradient to this L2 norm; None disables clipping.
    """

    SECTION = "optimizer"
    name: Literal["sgd", "adam", "adamw", "rmsprop"] = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    rho: float = 0.9
    epsilon: float = 1e-7
    clipnorm: Optional[float] = None

    def _check(self):
        self._require(self.lr > 0, "lr", "> 0")
        self._require(0 <= self.momentum < 1, "momentum", "in [0, 1)")
        self._require(not self.nesterov or self.name == "sgd", "nesterov",
                      f"false when optimizer.name is {self.name!r} (Nesterov momentum is SGD only)")
        self._require(not self.nesterov or self.momentum > 0, "nesterov", "false when optimizer.momentum is 0")
        self._require(0 <= self.rho < 1, "rho", "in [0, 1)")
        self._require(self.epsilon > 0, "epsilon", "> 0")
        self._require(self.clipnorm is None or self.clipnorm > 0, "clipnorm", "> 0 or null")


@dataclasses.dataclass(frozen=True)
class ScheduleConfig(_Section):
    """Training length and learning-rate schedule.

    epochs; batch_size: global batch (all replicas together). warmup_epochs: linear warm-up from
    0 to `optimizer.lr` (may be fractional). decay after warm-up: 'cosine' (down to min_lr),
    'step' (lr * decay_rate ** floor(epoch / decay_epochs), the exponential staircase of the TF
    and torchvision ImageNet recipes) or 'constant'. per_batch: update the rate every batch
    (True, as the TF LGC seed does) or once per epoch. min_lr: floor of the cosine decay.
    decay_rate, decay_epochs: used by 'step' only.
    """

    SECTION = "schedule"
    epochs: int = 100
    batch_size: int = 256
    warmup_epochs: float = 0.0
    decay: Literal["cosine", "step", "constant"] = "cosine"
    per_batch: bool = True
    min_lr: float = 0.0
    decay_rate: float = 0.1
    decay_epochs: float = 30.0

    def _check(self):
        self._require(self.epochs >= 1, "epochs", ">= 1")
        self._require(self.batch_size >= 1, "batch_size", ">= 1")
        self._require(self.warmup_epochs >= 0, "warmup_epochs", ">= 0")
        self._require(self.min_lr >= 0, "min_lr", ">= 0")
        self._require(0 < self.decay_rate <= 1, "decay_rate", "in (0, 1]")
        self._require(self.decay_epochs > 0, "decay_epochs", "> 0")


@dataclasses.dataclass(frozen=True)
class RegularizationConfig(_Section):
    """Loss and update regularisers (dropout is an architecture argument: `model.dropout`;
    the LGC group lasso is `lgc.lasso_decay`).

    weight_decay: coupled (L2) decay as in PyTorch's SGD `weight_decay` and the papers: the
    update adds weight_decay * w to the gradient, i.e. a loss of weight_decay / 2 * sum(w ** 2)
    (Keras `regularizers.L2(weight_decay / 2)`). weight_decay_skip_bn_and_bias: do not decay
    BatchNorm parameters and biases. label_smoothing: cross-entropy label smoothing (Szegedy 2016).
    ema_decay: exponential moving average of the weights (trainable weights and BatchNorm
    statistics; LGC masks are copied, not averaged), updated after every optimizer step n as
    tf.train.ExponentialMovingAverage does: avg -= (1 - d_n) * (avg - w); 0 turns it off (the
    MobileNetV3 paper, sec. 6.1: 0.9998). Validation, best/, evaluation and export then use the
    averaged weights (mobilenets/training/ema.py). ema_warmup: d_n = min(ema_decay, (1 + n) / (10 + n)),
    TF's num_updates rule (TF Model Garden's dynamic_decay); false: d_n = ema_decay from the start.
    """

    SECTION = "regularization"
    weight_decay: float = 0.0
    weight_decay_skip_bn_and_bias: bool = False
    label_smoothing: float = 0.0
    ema_decay: float = 0.0
    ema_warmup: bool = True

    def _check(self):
        self._require(self.weight_decay >= 0, "weight_decay", ">= 0")
        self._require(0 <= self.label_smoothing < 1, "label_smoothing", "in [0, 1)")
        self._require(0 <= self.ema_decay < 1, "ema_decay", "in [0, 1) (0 turns the weight average off)")


@dataclasses.dataclass(frozen=True)
class LGCConfig(_Section):
    """Learned-group-convolution training (CondenseNet, Huang et al. 2018). Used only by the
    models in LGC_MODEL_NAMES; the group count and condense factor are `model.groups` and
    `model.condense_factor` because they shape the network.

    lasso_decay: coefficient of the group-lasso penalty. schedule: 'condensenet' condenses at
    training progress k / (2 (C - 1)), k = 1 .. C - 1 (then only optimises), so it follows
    `schedule.epochs`; 'fixed_epochs' condenses at the epochs listed in fixed_epochs (one per
    stage, C - 1 of them; the TF seed's 400 // 6 steps are [66, 132, 198]). fixed_epochs is
    ignored by the 'condensenet' schedule.
    """

    SECTION = "lgc"
    lasso_decay: float = 0.0
    schedule: Literal["condensenet", "fixed_epochs"] = "condensenet"
    fixed_epochs: Tuple[int, ...] = ()

    def _check(self):
        self._require(self.lasso_decay >= 0, "lasso_decay", ">= 0")


@dataclasses.dataclass(frozen=True)
class RunConfig(_Section):
    """How and where a run executes.

    run_dir: directory for checkpoints, logs and the resolved config; None lets the trainer
    choose. seed: global random seed. strategy: tf.distribute strategy ('default' is one
    device). mixed_precision: None (float32), 'mixed_float16' (GPU) or 'mixed_bfloat16'
    (TPU, recent CPUs/GPUs). xla: jit-compile the train step. checkpoint_every, eval_every:
    in epochs. log_every: in steps. steps_per_epoch: cap on steps per epoch (smoke runs); None
    is a full pass over the data. resume: continue from the latest checkpoint in run_dir.
    nan_policy on a NaN/inf loss: 'raise' (stop with TrainingDiverged, non-zero exit),
    'stop' (end training, keeping the last good checkpoint) or 'restart' (go back to the last
    good checkpoint with the learning rate times nan_lr_factor, at most nan_restarts times).
    precise_bn_images: before each validation and each checkpoint, every BatchNorm's moving mean and
    variance are replaced by their average over this many training images (whole batches, at most
    one epoch's) under the current weights ("precise BN", Wu & Johnson 2021;
    mobilenets/training/precise_bn.py); 0 keeps the moving averages.
    """

    SECTION = "run"
    run_dir: Optional[str] = None
    seed: int = 0
    strategy: Literal["default", "mirrored", "multi_worker", "tpu"] = "default"
    mixed_precision: Optional[Literal["mixed_float16", "mixed_bfloat16"]] = None
    xla: bool = False
    checkpoint_every: int = 1
    eval_every: int = 1
    log_every: int = 100
    steps_per_epoch: Optional[int] = None
    resume: bool = False
    nan_policy: Literal["raise", "stop", "restart"] = "raise"
    nan_lr_factor: float = 0.5
    nan_restarts: int = 3
    precise_bn_images: int = 1024

    def _check(self):
        self._require(self.run_dir is None or self.run_dir != "", "run_dir", "a path or null")
        self._require(0 <= self.seed < 2**32, "seed", "in [0, 2**32)")
        self._require(self.checkpoint_every >= 1, "checkpoint_every", ">= 1")
        self._require(self.eval_every >= 1, "eval_every", ">= 1")
        self._require(self.log_every >= 1, "log_every", ">= 1")
        self._require(0 < self.nan_lr_factor < 1, "nan_lr_factor", "in (0, 1)")
        self._require(self.nan_restarts >= 0, "nan_restarts", ">= 0")
        self._require(self.precise_bn_images >= 0, "precise_bn_images", ">= 0 (0 keeps the moving averages)")
        self._require(self.steps_per_epoch is None or self.steps_per_epoch >= 1, "steps_per_epoch", ">= 1 or null")
        self._require(not (self.strategy == "tpu" and self.mixed_precision == "mixed_float16"), "mixed_precision",
                      "null or 'mixed_bfloat16' with run.strategy=tpu (TPUs have no float16)")


@dataclasses.dataclass(frozen=True)
class FinetuneConfig(_Section):
    """Fine-tuning pretrained weights (model.weights) in two phases, as the Keras / TensorFlow
    transfer-learning guides do (tensorflow.org/tutorials/images/transfer_learning).

    head_epochs: phase 1, the first head_epochs epochs: only the classifier ('logits') trains,
    the backbone is frozen with its BatchNorm in inference mode; 0 skips it. Phase 2, the other
    schedule.epochs - head_epochs epochs: the layers from `unfreeze_from` on (a top-level layer of
    the model: 'block_12', 'head_conv', ...; null: all of them) train too, at the learning rate
    times lr_factor. Each phase runs `schedule` (warm-up, decay) over its own epochs.
    batch_norm in phase 2: 'train' (the unfrozen BatchNorms normalize with batch statistics and
    learn, as timm's fine-tuning does) or 'frozen' (they stay in inference mode with the pretrained
    statistics, scale and offset, as Keras' transfer-learning guide advises).
    """

    SECTION = "finetune"
    head_epochs: int = 0
    unfreeze_from: Optional[str] = None
    lr_factor: float = 0.1
    batch_norm: Literal["train", "frozen"] = "train"

    def _check(self):
        self._require(self.head_epochs >= 0, "head_epochs", ">= 0")
        self._require(self.unfreeze_from is None or self.unfreeze_from != "", "unfreeze_from", "a layer name or null")
        self._require(0 < self.lr_factor <= 1, "lr_factor", "in (0, 1]")


SECTIONS = {
    "model": ModelConfig,
    "data": DataConfig,
    "optimizer": OptimizerConfig,
    "schedule": ScheduleConfig,
    "regularization": RegularizationConfig,
    "lgc": LGCConfig,
    "run": RunConfig,
    "finetune": FinetuneConfig,
}


@dataclasses.dataclass(frozen=True)
class Config:
    """A complete, valid training configuration. See the section classes for each field."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    regularization: RegularizationConfig = dataclasses.field(default_factory=RegularizationConfig)
    lgc: LGCConfig = dataclasses.field(default_factory=LGCConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    finetune: FinetuneConfig = dataclasses.field(default_factory=FinetuneConfig)

    def __post_init__(self):
        for name, cls in SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"Config.{name} must be a {cls.__name__}; got {type(getattr(self, name)).__name__}")
        self._check_across_sections()

    def _check_across_sections(self):
        model, data, schedule, lgc = self.model, self.data, self.schedule, self.lgc
        expected = DATASET_NUM_CLASSES[data.dataset]
        fixed = expected is not None and data.dataset != "synthetic"
        if model.num_classes is not None and fixed and model.num_classes != expected:
            raise ConfigError(
                f"model.num_classes={model.num_classes} but data.dataset={data.dataset!r} has {expected} classes; "
                f"set model.num_classes={expected} or null"
            )
        if schedule.warmup_epochs > 0 and schedule.warmup_epochs >= schedule.epochs:
            raise ConfigError(
                f"schedule.warmup_epochs={schedule.warmup_epochs:g} must be less than schedule.epochs={schedule.epochs}; "
                f"lower it (schedule.warmup_epochs=0 disables warm-up)"
            )
        head = self.finetune.head_epochs
        if head and head >= schedule.epochs:
            raise ConfigError(f"finetune.head_epochs={head} must be less than schedule.epochs={schedule.epochs} "
                              f"(the rest are the unfrozen phase)")
        if head and schedule.warmup_epochs >= min(head, schedule.epochs - head):
            raise ConfigError(f"schedule.warmup_epochs={schedule.warmup_epochs:g} must be shorter than each "
                              f"fine-tuning phase ({head} and {schedule.epochs - head} epochs)")
        if schedule.decay == "cosine" and schedule.min_lr > self.optimizer.lr:
            raise ConfigError(
                f"schedule.min_lr={schedule.min_lr:g} must not exceed optimizer.lr={self.optimizer.lr:g}"
            )
        if model.is_lgc and lgc.schedule == "fixed_epochs":
            epochs = lgc.fixed_epochs
            if not epochs:
                raise ConfigError("lgc.fixed_epochs must list the condensation epochs when lgc.schedule=fixed_epochs, "
                                  "e.g. lgc.fixed_epochs=[66,132,198]")
            if any(b <= a for a, b in zip(epochs, epochs[1:])) or epochs[0] < 1 or epochs[-1] >= schedule.epochs:
                raise ConfigError(
                    f"lgc.fixed_epochs must increase strictly within [1, schedule.epochs={schedule.epochs}); "
                    f"got {list(epochs)}"
                )
            stages = None if model.condense_factor is None else model.condense_factor - 1
            if stages is not None and len(epochs) != stages:
                raise ConfigError(
                    f"lgc.fixed_epochs needs model.condense_factor - 1 = {stages} epochs (one per condensation "
                    f"stage); got {len(epochs)}: {list(epochs)}"
                )

    @property
    def num_classes(self):
        """The classifier width: `model.num_classes`, else the dataset's known class count; None
        when only the data can tell ('folder', 'npz')."""
        if self.model.num_classes is not None:
            return self.model.num_classes
        return DATASET_NUM_CLASSES[self.data.dataset]

    # ----- dicts ---------------------------------------------------------------------------------

    def to_dict(self):
        """Plain nested dict of JSON types (tuples become lists); `from_dict` reads it back."""
        return {name: getattr(self, name).to_dict() for name in SECTIONS}

    @classmethod
    def from_dict(cls, data, base=None):
        """Builds a Config from a nested dict, strictly.

        Unknown sections or keys, and values of the wrong type, raise ConfigError (ints are
        accepted for floats, lists for integer lists). Sections and keys that are missing take
        their value from `base` (a Config) when given, else the dataclass defaults.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be a mapping of section: {{key: value}}; got {type(data).__name__}")
        for name in data:
            if name not in SECTIONS:
                raise ConfigError(
                    f"unknown section {str(name)!r}{did_you_mean(str(name), SECTIONS)}; valid sections: {', '.join(SECTIONS)}"
                )
        sections = {}
        for name, section_cls in SECTIONS.items():
            base_section = None if base is None else getattr(base, name)
            if name in data:
                sections[name] = section_cls.from_dict(data[name], base=base_section)
            else:
                sections[name] = base_section if base_section is not None else section_cls()
        return cls(**sections)

    # ----- files ---------------------------------------------------------------------------------

    def save(self, path):
        """Writes the config as JSON, atomically (a reader never sees half a file)."""
        from mobilenets.io import write_json

        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path, base=None):
        """Reads a config from JSON or, for a .yaml / .yml file, YAML (needs PyYAML).

        Strict as `from_dict`; keys the file leaves out come from `base` or the defaults, so a
        YAML file can hold only the values it changes.
        """
        return cls.from_dict(read_config_file(path), base=base)


def _reject_duplicates(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise ConfigError(f"duplicate key {key!r} in config file")
        result[key] = value
    return result


def read_config_file(path):
    """Parses a JSON or YAML file into plain data; every failure is a one-line ConfigError."""
    path = os.fspath(path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise ConfigError(f"cannot read config file {path!r}: {' '.join(str(e).split())}") from None
    if path.lower().endswith((".yaml", ".yml")):
        from .yaml_loader import parse_yaml

        return parse_yaml(text, path)
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except (ValueError, RecursionError) as e:  # e.g. an integer too long to convert
        raise ConfigError(f"{path} is not a usable JSON config: {type(e).__name__}") from None
