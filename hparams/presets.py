"""Named presets: one per published training recipe, each citing its source and result.

    cfg = get_preset("cifar100_mobilenetv2_lgc")         # the TF LGC seed's recipe
    cfg = default_preset_for_model("mobilenetv3_small")  # what `train.py --model ...` uses

Run any preset with `python train.py --preset NAME` (or `--model MODEL` for its default);
change values with `-o section.key=value` (see hparams.overrides).

Sources, cited by the presets below:
  [seed]  The TensorFlow MobileNetV2-LGC repository (this project's seed): CIFAR-100 table and
          hyperparameters (lr 0.1 cosine per batch, Nesterov 0.9, wd 1e-4, batch 64, 400 epochs,
          keep_prob 0.9, group 4, condense_factor 4, lasso_decay 1e-5).
  [igcv3] Sun, Li, Liu, Wang. "IGCV3: Interleaved Low-Rank Group Convolutions for Efficient Deep
          Neural Networks", BMVC 2018; github.com/homles11/IGCV3 (CIFAR-10/100 table).
  [dli14] github.com/d-li14/mobilenetv2.pytorch, README "Training" (ImageNet MobileNetV2).
  [tv]    github.com/pytorch/vision references/classification/README.md (MobileNetV3 recipe).
  [v3]    Howard et al. "Searching for MobileNetV3", ICCV 2019, sec. 6.1 (RMSProp, batch 4096,
          exponential moving average of the weights with decay 0.9998).
  [v1]    Howard et al. "MobileNets", arXiv:1704.04861, sec. 4; the Inception-V3 RMSProp recipe
          it follows (Szegedy et al. 2016, sec. 8) and TF-slim's mobilenet_v1_train.py.
  [tl]    tensorflow.org/tutorials/images/transfer_learning ("Transfer learning and fine-tuning",
          MobileNetV2 on cats vs dogs) and keras.io/guides/transfer_learning.
  [mg4]   The TF Model Garden's MobileNetV4 ImageNet experiments, github.com/tensorflow/models
          official/vision/configs/experiments/image_classification/imagenet_mobilenetv4_*_tpu.yaml
          (AdamW, TPU batches of 4096 / 16384); Qin et al. "MobileNetV4: Universal Models for the
          Mobile Ecosystem", arXiv:2404.10518, table 5 (ImageNet top-1).
"""

import dataclasses

from mobilenets.errors import ConfigError

from .config import MODEL_NAMES, Config, DataConfig, LGCConfig, ModelConfig, OptimizerConfig, did_you_mean
from .config import FinetuneConfig, RegularizationConfig, RunConfig, ScheduleConfig

_PRESETS = {}


def register_preset(name):
    """Decorator: registers a zero-argument function returning a Config under `name`.

    The function's docstring is the preset's description (source, command, accuracy).
    """

    def wrap(fn):
        if name in _PRESETS:
            raise ValueError(f"preset {name!r} registered twice")
        if not (fn.__doc__ or "").strip():
            raise ValueError(f"preset {name!r} needs a docstring citing its source and accuracy")
        _PRESETS[name] = fn
        return fn

    return wrap


def list_presets():
    """Names of all registered presets, sorted."""
    return sorted(_PRESETS)


def _lookup(name):
    if not isinstance(name, str) or name not in _PRESETS:
        raise ConfigError(f"unknown preset {name!r}{did_you_mean(str(name), _PRESETS)}; valid presets: {', '.join(list_presets())}")
    return _PRESETS[name]


def get_preset(name):
    """A fresh Config for preset `name`; ConfigError listing the valid names if it is unknown."""
    return _lookup(name)()


def describe_preset(name):
    """The preset's description: source, recipe and the accuracy it reaches."""
    return " ".join(_lookup(name).__doc__.split())


def summarize_preset(name, width=100):
    """The first sentence of the preset's description, cut to `width` characters (one line of --list-presets)."""
    text = describe_preset(name)
    first = text.split(". ", 1)[0].rstrip(".")
    return first if len(first) <= width else first[: width - 3].rstrip() + "..."


# ----- default preset per model ------------------------------------------------------------------
# Every model defaults to a CIFAR-100 recipe (the seed's benchmark, downloadable in minutes, so
# `train.py --model X` runs anywhere and results compare across the family). ImageNet recipes
# are available by name.
DEFAULT_PRESET_FOR_MODEL = {
    "mobilenetv1": "cifar100_mobilenetv1",
    "mobilenetv2": "cifar100_mobilenetv2",
    "mobilenetv3_large": "cifar100_mobilenetv3_large",
    "mobilenetv3_small": "cifar100_mobilenetv3_small",
    "mobilenetv3_large_minimalistic": "cifar100_mobilenetv3_large",
    "mobilenetv3_small_minimalistic": "cifar100_mobilenetv3_small",
    "mobilenetv2_gc": "cifar100_mobilenetv2_gc",
    "mobilenetv2_lgc": "cifar100_mobilenetv2_lgc",
    "mobilenetv2_lgc_proj": "cifar100_mobilenetv2_lgc_proj",
    "mobilenetv2_gc_lgc": "cifar100_mobilenetv2_gc_lgc",
    "igcv3": "cifar100_igcv3",
    "mobilenetv4_conv_small": "cifar100_mobilenetv4_conv_small",
    "mobilenetv4_conv_medium": "cifar100_mobilenetv4_conv_medium",
    "mobilenetv4_conv_large": "cifar100_mobilenetv4_conv_large",
    "mobilenetv4_hybrid_medium": "cifar100_mobilenetv4_hybrid_medium",
    "mobilenetv4_hybrid_large": "cifar100_mobilenetv4_hybrid_large",
}
assert set(DEFAULT_PRESET_FOR_MODEL) == set(MODEL_NAMES)


def default_preset_name(model_name):
    """Name of the preset `train.py --model model_name` starts from."""
    if not isinstance(model_name, str) or model_name not in DEFAULT_PRESET_FOR_MODEL:
        raise ConfigError(f"unknown model {model_name!r}{did_you_mean(str(model_name), MODEL_NAMES)}; "
                          f"valid models: {', '.join(MODEL_NAMES)}")
    return DEFAULT_PRESET_FOR_MODEL[model_name]


def default_preset_for_model(model_name):
    """The model's default preset, with `model.name` set to `model_name`."""
    config = get_preset(default_preset_name(model_name))
    return dataclasses.replace(config, model=dataclasses.replace(config.model, name=model_name))


# ----- recipes -----------------------------------------------------------------------------------


def _seed_cifar_recipe(dataset, model, **model_kw):
    """The TF LGC seed's CIFAR recipe: SGD Nesterov 0.9, lr 0.1 cosine per batch, wd 1e-4,
    batch 64, 400 epochs, keep_prob 0.9 (dropout 0.1), standard pad-crop-flip augmentation."""
    return Config(
        model=ModelConfig(name=model, config="cifar", input_size=32, dropout=0.1, normalization=dataset, **model_kw),
        data=DataConfig(dataset=dataset, augmentation="cifar", validation_fraction=0.0, cache=True,
                        shuffle_buffer=50000, eval_crop_fraction=1.0),
        optimizer=OptimizerConfig(name="sgd", lr=0.1, momentum=0.9, nesterov=True),
        schedule=ScheduleConfig(epochs=400, batch_size=64, warmup_epochs=0.0, decay="cosine", per_batch=True,
                                min_lr=0.0),
        regularization=RegularizationConfig(weight_decay=1e-4, weight_decay_skip_bn_and_bias=False,
                                            label_smoothing=0.0),
        run=RunConfig(),
    )


def _seed_lgc_recipe(model):
    """The seed's CIFAR-100 recipe plus its LGC values: groups 4, condense factor 4, lasso 1e-5."""
    config = _seed_cifar_recipe("cifar100", model, groups=4, condense_factor=4)
    return dataclasses.replace(config, lgc=LGCConfig(lasso_decay=1e-5, schedule="condensenet"))


@register_preset("cifar100_mobilenetv2_lgc")
def cifar100_mobilenetv2_lgc():
    """MobileNetV2 with learned group convolutions on CIFAR-100, the TF LGC seed's recipe [seed]:
    SGD Nesterov momentum 0.9, lr 0.1 cosine decay per batch, weight decay 1e-4, batch 64,
    400 epochs, dropout 0.1 (keep_prob 0.9), groups 4, condense factor 4, group-lasso decay 1e-5,
    CondenseNet condensation schedule (epochs 66.7/133.3/200; the seed's fixed [66, 132, 198] is
    lgc.schedule=fixed_epochs lgc.fixed_epochs=[66,132,198]). Reaches 76.30 top-1 (1.074M params,
    119M mult-adds) [seed]. Run: python train.py --model mobilenetv2_lgc
    """
    return _seed_lgc_recipe("mobilenetv2_lgc")


@register_preset("cifar100_mobilenetv2_lgc_proj")
def cifar100_mobilenetv2_lgc_proj():
    """MobileNetV2 with LGC on the projection 1x1 convs only, CIFAR-100, the seed's recipe (see
    cifar100_mobilenetv2_lgc). Reaches 77.20 top-1 (1.638M params, 215M mult-adds) [seed].
    """
    return _seed_lgc_recipe("mobilenetv2_lgc_proj")


@register_preset("cifar100_mobilenetv2_gc_lgc")
def cifar100_mobilenetv2_gc_lgc():
    """MobileNetV2 with group-conv expansion and LGC projection, CIFAR-100, the seed's recipe (see
    cifar100_mobilenetv2_lgc). Reaches 76.60 top-1 (1.074M params, 119M mult-adds) [seed].
    """
    return _seed_lgc_recipe("mobilenetv2_gc_lgc")


@register_preset("cifar100_mobilenetv2")
def cifar100_mobilenetv2():
    """MobileNetV2 (CIFAR stem) on CIFAR-100 with the seed's recipe: SGD Nesterov 0.9, lr 0.1 cosine
    per batch, wd 1e-4, batch 64, 400 epochs, dropout 0.1. Reaches 77.40 top-1 (2.36M params, 314M
    mult-adds) [seed]; the IGCV3 paper reports 77.09 for its MobileNetV2 [igcv3]. model.expansion=4
    gives 76.00 and model.expansion=1 gives 74.32 [seed].
    """
    return _seed_cifar_recipe("cifar100", "mobilenetv2")


@register_preset("cifar10_mobilenetv2")
def cifar10_mobilenetv2():
    """MobileNetV2 (CIFAR stem) on CIFAR-10 with the seed's CIFAR recipe (SGD Nesterov 0.9, lr 0.1
    cosine per batch, wd 1e-4, batch 64, 400 epochs, dropout 0.1). The IGCV3 paper reports 94.56
    top-1 for MobileNetV2 (2.3M params) [igcv3]; its exact CIFAR schedule is not in its README,
    so this reuses the seed's.
    """
    return _seed_cifar_recipe("cifar10", "mobilenetv2")


@register_preset("cifar10_short")
def cifar10_short():
    """The best recipe we measured for 30 CPU-minutes of training on ~5k CIFAR-10 images (issues 15, 32):
    MobileNetV2-CIFAR 0.5 in bfloat16 (fast on CPUs with AVX512-BF16/AMX, slow elsewhere: then
    -o run.mixed_precision=null), batch 64, SGD Nesterov 0.9, lr 0.1 with a 1-epoch warm-up then
    cosine per batch, wd 5e-4, BatchNorm momentum 0.9 (PyTorch's 0.1), dropout 0.1, label smoothing
    0.1, pad-crop-flip, 30 epochs: what fits 30 CPU-minutes at one thread on 4,322 images (56
    CPU-seconds an epoch, validation and precise BatchNorm statistics included); on more images,
    scale the epochs down in proportion. LGC models (model.name=mobilenetv2_lgc) add the seed's lasso
    1e-5. Held-out top-1 on ../shared/data/cifar10_real_5k.npz (85/15 split, 763 images),
    benchmarks/recipe_budget.py, seed 0: 77.1% in 27.8 CPU-minutes; without label smoothing 75.8%; at
    20 epochs (the earlier preset, sized by a stale 85 CPU-seconds an epoch) 69.3%. The exported files
    over seeds: README, "Recipes at a CPU budget".
    """
    config = _seed_cifar_recipe("cifar10", "mobilenetv2")
    return dataclasses.replace(
        config,
        model=dataclasses.replace(config.model, width_multiplier=0.5, bn_momentum=0.9),
        schedule=dataclasses.replace(config.schedule, epochs=30, warmup_epochs=1.0),
        regularization=dataclasses.replace(config.regularization, weight_decay=5e-4, label_smoothing=0.1),
        lgc=LGCConfig(lasso_decay=1e-5, schedule="condensenet"),
        run=dataclasses.replace(config.run, mixed_precision="mixed_bfloat16"),
    )


@register_preset("cifar10_short_v4")
def cifar10_short_v4():
    """cifar10_short for MobileNetV4-Conv-S with AdamW (issue 24; 44.4% held-out top-1 in 4 epochs where
    cifar10_short's SGD reaches 23.6%): the same data, width 0.5, bfloat16, batch 64,
    20 epochs, 1-epoch warm-up then cosine, BatchNorm momentum 0.9, dropout 0.1, but AdamW as the
    TF Model Garden trains MobileNetV4 [mg4]: lr 2e-3 (beta_1 0.9), decoupled weight decay 0.05,
    BatchNorm parameters and biases not decayed. With cifar10_short's SGD at lr 0.1 the kernels
    before BatchNorm grow (the stem's 12x in the first epoch), which divides their effective rate
    by the square, and V4 stalls. Held-out top-1 on ../shared/data/cifar10_real_5k.npz (85/15
    split), 4 epochs (the schedule compressed, 5-6 CPU-minutes): 44.4% with this preset, 23.6% with
    cifar10_short, 42.9% with SGD at lr 0.02; MobileNetV2 0.5 with cifar10_short 39.1%. 20 epochs
    not measured. Run: python train.py --preset cifar10_short_v4 -o data.dataset=npz
    -o data.data_dir=cifar10_real_5k.npz -o data.validation_fraction=0.15 -o model.num_classes=10
    (benchmarks/pareto.py uses it for its V4 points).
    """
    config = cifar10_short()
    return dataclasses.replace(
        config,
        model=dataclasses.replace(config.model, name="mobilenetv4_conv_small"),
        optimizer=OptimizerConfig(name="adamw", lr=2e-3, momentum=0.9, epsilon=1e-7),
        schedule=dataclasses.replace(config.schedule, epochs=20),
        regularization=dataclasses.replace(config.regularization, weight_decay=0.05,
                                           weight_decay_skip_bn_and_bias=True, label_smoothing=0.0),
    )


@register_preset("cifar100_igcv3")
def cifar100_igcv3():
    """IGCV3-D (G1 = G2 = 2 group 1x1 convs, channel permutation) on CIFAR-100 with the seed's CIFAR
    recipe. The IGCV3 paper reports 77.95 top-1 for IGCV3-D 1.0x (2.4M params) [igcv3].
    """
    return _seed_cifar_recipe("cifar100", "igcv3", groups=2)


@register_preset("cifar10_igcv3")
def cifar10_igcv3():
    """IGCV3-D on CIFAR-10 with the seed's CIFAR recipe. The IGCV3 paper reports 94.96 top-1 for
    IGCV3-D 1.0x (2.4M params) [igcv3].
    """
    return _seed_cifar_recipe("cifar10", "igcv3", groups=2)


@register_preset("cifar100_mobilenetv1")
def cifar100_mobilenetv1():
    """MobileNetV1 (CIFAR stem) on CIFAR-100 with the seed's recipe. Reaches 77.10 top-1 at width
    1.0 (3.3M params, 627M mult-adds); model.width_multiplier=0.5 gives 75.30 and 0.25 gives 72.58
    [seed].
    """
    return _seed_cifar_recipe("cifar100", "mobilenetv1")


@register_preset("cifar100_mobilenetv2_gc")
def cifar100_mobilenetv2_gc():
    """MobileNetV2 with 4-group (fixed, not learned) expansion 1x1 convs on CIFAR-100, the seed's
    recipe. No published top-1 for this variant alone; the seed's GC-expansion + LGC-projection
    model reaches 76.60 and plain MobileNetV2 77.40 [seed].
    """
    return _seed_cifar_recipe("cifar100", "mobilenetv2_gc", groups=4)


@register_preset("cifar100_mobilenetv3_large")
def cifar100_mobilenetv3_large():
    """MobileNetV3-Large (CIFAR stem) on CIFAR-100 with the seed's CIFAR recipe, so it compares with
    the seed's table. No published CIFAR-100 top-1 for this model; the default for
    mobilenetv3_large and mobilenetv3_large_minimalistic.
    """
    return _seed_cifar_recipe("cifar100", "mobilenetv3_large")


@register_preset("cifar100_mobilenetv3_small")
def cifar100_mobilenetv3_small():
    """MobileNetV3-Small (CIFAR stem) on CIFAR-100 with the seed's CIFAR recipe. No published
    CIFAR-100 top-1 for this model; the default for mobilenetv3_small and
    mobilenetv3_small_minimalistic.
    """
    return _seed_cifar_recipe("cifar100", "mobilenetv3_small")


def _imagenet(model, optimizer, schedule, regularization, dropout, bn_momentum=0.99):
    return Config(
        model=ModelConfig(name=model, config="imagenet", input_size=224, dropout=dropout, normalization="inception",
                          bn_momentum=bn_momentum),
        data=DataConfig(dataset="imagenet", augmentation="inception", validation_fraction=0.0, cache=False,
                        shuffle_buffer=10000, eval_crop_fraction=0.875),
        optimizer=optimizer,
        schedule=schedule,
        regularization=regularization,
        run=RunConfig(),
    )


@register_preset("imagenet_mobilenetv2")
def imagenet_mobilenetv2():
    """MobileNetV2 1.0 on ImageNet, d-li14's efficient recipe [dli14]: SGD momentum 0.9, batch 256,
    150 epochs, lr 0.05 cosine decay per batch, weight decay 4e-5, no dropout, plain cross-entropy
    (its imagenet.py has no label smoothing), PyTorch BatchNorm momentum (0.9 here). Reaches 72.19
    top-1 / 90.53 top-5 (paper: 72.0). Label smoothing, often added: regularization.label_smoothing=0.1.
    """
    return _imagenet(
        "mobilenetv2",
        OptimizerConfig(name="sgd", lr=0.05, momentum=0.9, nesterov=False),
        ScheduleConfig(epochs=150, batch_size=256, warmup_epochs=0.0, decay="cosine", per_batch=True),
        RegularizationConfig(weight_decay=4e-5, weight_decay_skip_bn_and_bias=False, label_smoothing=0.0),
        dropout=0.0,
        bn_momentum=0.9,
    )


@register_preset("imagenet_mobilenetv2_long")
def imagenet_mobilenetv2_long():
    """MobileNetV2 1.0 on ImageNet, d-li14's longer recipe [dli14]: batch 1024, lr 0.4 after a
    5-epoch linear warm-up, 250 epochs, cosine decay, dropout 0.2 before the classifier, weight
    decay 4e-5 not applied to biases and BatchNorm, SGD momentum 0.9, BatchNorm momentum 0.9.
    Reaches 72.83 top-1 / 91.06 top-5. (The README says the warm-up starts at 0.1; its code, and
    this preset, ramp linearly from 0.)
    """
    return _imagenet(
        "mobilenetv2",
        OptimizerConfig(name="sgd", lr=0.4, momentum=0.9, nesterov=False),
        ScheduleConfig(epochs=250, batch_size=1024, warmup_epochs=5.0, decay="cosine", per_batch=True),
        RegularizationConfig(weight_decay=4e-5, weight_decay_skip_bn_and_bias=True, label_smoothing=0.0),
        dropout=0.2,
        bn_momentum=0.9,
    )


def _torchvision_mobilenetv3(model):
    return _imagenet(
        model,
        OptimizerConfig(name="rmsprop", lr=0.064, momentum=0.9, rho=0.9, epsilon=1e-3),
        ScheduleConfig(epochs=600, batch_size=1024, warmup_epochs=0.0, decay="step", per_batch=False,
                       decay_rate=0.973, decay_epochs=2.0),
        RegularizationConfig(weight_decay=1e-5, weight_decay_skip_bn_and_bias=False, label_smoothing=0.0,
                             ema_decay=0.9998, ema_warmup=True),
        dropout=0.2,
    )


@register_preset("imagenet_mobilenetv3_large")
def imagenet_mobilenetv3_large():
    """MobileNetV3-Large 1.0 on ImageNet, torchvision's reproduced RMSProp recipe [tv] (the paper's
    own recipe needs batch 4096 on TPUs): RMSProp momentum 0.9, rho 0.9, eps 0.0316 (1e-3 in
    tf_keras' convention), lr 0.064 for batch 1024 (8 x 128), x0.973 every 2 epochs, 600 epochs,
    weight decay 1e-5, dropout 0.2, BatchNorm momentum 0.99; and the paper's exponential moving
    average of the weights ([v3] sec. 6.1: decay 0.9998 per step, here with TF's num_updates warm-up;
    about 4 epochs of averaging at batch 1024, 16 at the paper's 4096), which validation, best/ and
    export use. torchvision reaches 74.04 top-1 (paper 75.2) with AutoAugment, random erasing 0.2
    and, instead of an EMA, the average of its last 3 improving checkpoints; this preset's
    'inception' augmentation lacks the first two: expect somewhat less.
    """
    return _torchvision_mobilenetv3("mobilenetv3_large")


@register_preset("imagenet_mobilenetv3_small")
def imagenet_mobilenetv3_small():
    """MobileNetV3-Small 1.0 on ImageNet, torchvision's reproduced RMSProp recipe [tv] (same values
    as imagenet_mobilenetv3_large, the paper's weight EMA 0.9998 included). torchvision reaches 67.67
    top-1 (paper 67.4) with AutoAugment, random erasing and checkpoint averaging (in place of the
    EMA); this preset lacks the two augmentations: expect somewhat less.
    """
    return _torchvision_mobilenetv3("mobilenetv3_small")


@register_preset("imagenet_mobilenetv1")
def imagenet_mobilenetv1():
    """MobileNetV1 1.0 on ImageNet, the paper's recipe [v1]: RMSProp (rho 0.9, momentum 0.9,
    epsilon 1.0 as in Inception-V3), lr 0.045 decayed x0.94 every 2.5 epochs (TF-slim
    mobilenet_v1_train.py), weight decay 4e-5 (TF-slim), dropout 0.001 (TF-slim keep_prob 0.999),
    Inception crop augmentation. The paper reports 70.6 top-1 but not its batch size or length
    (it trained asynchronously); batch 256 and 200 epochs here are this project's choice.
    """
    return _imagenet(
        "mobilenetv1",
        OptimizerConfig(name="rmsprop", lr=0.045, momentum=0.9, rho=0.9, epsilon=1.0),
        ScheduleConfig(epochs=200, batch_size=256, warmup_epochs=0.0, decay="step", per_batch=False,
                       decay_rate=0.94, decay_epochs=2.5),
        RegularizationConfig(weight_decay=4e-5, weight_decay_skip_bn_and_bias=False, label_smoothing=0.0),
        dropout=0.001,
    )


@register_preset("finetune")
def finetune():
    """Fine-tune ImageNet weights on your own photos [tl]: a new classifier for the classes of
    photos/<class>/*.jpg, 20% of each class held out for validation; 10 epochs of the head alone
    (backbone frozen, BatchNorm in inference mode), then 10 epochs of the whole network at a tenth
    of the rate; Adam 1e-4, dropout 0.2, 224x224. The tutorial reaches roughly 97-98% held-out
    top-1 on cats vs dogs with MobileNetV2. Run: python train.py --preset finetune --model
    mobilenetv3_large --weights imagenet --data-dir photos/ (or --weights PATH.h5 / RUN_DIR).
    """
    return Config(
        model=ModelConfig(name="mobilenetv2", config="imagenet", input_size=224, dropout=0.2,
                          normalization="inception", weights="imagenet"),
        data=DataConfig(dataset="folder", data_dir="photos", augmentation="inception", validation_fraction=0.2,
                        shuffle_buffer=10000, eval_crop_fraction=0.875),
        optimizer=OptimizerConfig(name="adam", lr=1e-4, momentum=0.9, epsilon=1e-7),
        schedule=ScheduleConfig(epochs=20, batch_size=32, warmup_epochs=0.0, decay="constant", per_batch=True),
        regularization=RegularizationConfig(weight_decay=0.0),
        finetune=FinetuneConfig(head_epochs=10, unfreeze_from=None, lr_factor=0.1),
        run=RunConfig(),
    )


@register_preset("smoke")
def smoke():
    """Smoke test, not a recipe: MobileNetV2 (CIFAR stem) on 64 synthetic 32x32 images of 10
    classes, 2 epochs of at most 2 steps of batch 8, SGD lr 0.01, evaluated on the synthetic
    validation split. Checks that a model builds, trains, checkpoints and evaluates end to end in
    seconds; accuracy is meaningless. Run: python train.py --preset smoke [-o model.name=...]
    """
    return Config(
        model=ModelConfig(name="mobilenetv2", config="cifar", input_size=32, dropout=0.0, num_classes=10,
                          normalization="inception"),
        data=DataConfig(dataset="synthetic", augmentation="none", validation_fraction=0.0, cache=True,
                        shuffle_buffer=64, eval_crop_fraction=1.0, synthetic_examples=64),
        optimizer=OptimizerConfig(name="sgd", lr=0.01, momentum=0.9),
        schedule=ScheduleConfig(epochs=2, batch_size=8, warmup_epochs=0.0, decay="constant", per_batch=True),
        regularization=RegularizationConfig(weight_decay=1e-4),
        lgc=LGCConfig(lasso_decay=1e-5),
        run=RunConfig(seed=0, checkpoint_every=1, eval_every=1, log_every=1, steps_per_epoch=2),
    )


# ----- MobileNetV4 (Qin et al. 2024) -------------------------------------------------------------


_MOBILENETV4_TOP1 = {  # ImageNet top-1 in Qin et al. 2024 (table 5), at 224 / 256 / 384 pixels
    "mobilenetv4_conv_small": 73.8, "mobilenetv4_conv_medium": 79.9, "mobilenetv4_conv_large": 82.9,
    "mobilenetv4_hybrid_medium": 80.7, "mobilenetv4_hybrid_large": 83.4,
}


def _cifar100_mobilenetv4(model):
    def preset():
        return _seed_cifar_recipe("cifar100", model)

    preset.__name__ = preset.__qualname__ = f"cifar100_{model}"
    preset.__doc__ = f"""{model} (CIFAR configuration: stride 1 in the stem and the next two downsampling
    rows, so 32x32 ends at 8x8) on CIFAR-100 with the seed's CIFAR recipe [seed], so it compares
    with the rest of the zoo; no published CIFAR-100 top-1 for MobileNetV4 (ImageNet:
    {_MOBILENETV4_TOP1[model]} top-1, Qin et al. 2024, "MobileNetV4: Universal Models for the
    Mobile Ecosystem"). The paper's own recipe is ImageNet at the native resolution (AdamW, batches
    of thousands on TPU pods, hundreds of epochs or more, and distillation for its best figures):
    it needs accelerators we do not have; it is preset imagenet_{model}. Run: python train.py
    --model {model}
    """
    return register_preset(f"cifar100_{model}")(preset)


for _model in _MOBILENETV4_TOP1:
    _cifar100_mobilenetv4(_model)


# The TF Model Garden's MobileNetV4 ImageNet experiments [mg4]:
# github.com/tensorflow/models official/vision/configs/experiments/image_classification/
# imagenet_mobilenetv4_{conv_small,conv_medium,conv_large,hybrid_medium,hybrid_large}_tpu.yaml.
# Their schedules are in steps; epochs here are steps * batch / 1,281,167 (ImageNet's training
# images), rounded: 1,560 warm-up steps are 5 epochs at batch 4096 and 20 at batch 16384.
_MG4_NOTES = """What our config cannot say (all these presets): the Model Garden's cosine decay
    counts its steps from step 0, warm-up included (here it starts after the warm-up: the rates
    differ by at most 1% of the peak at batch 4096, where warm-up is 1% of training or less, and 4%
    at batch 16384); its AdamW skips only BatchNorm variables (exclude_from_weight_decay
    ['batch_normalization']) while weight_decay_skip_bn_and_bias here skips every 1-D variable
    (biases and layer scales too); its RandAugment (official/vision/ops/augment.py) has its own op
    set and magnitude scale (level / 10 of each op's maximum, translate_const in pixels, Cutout
    excluded) while data.auto_augment='randaugment' is timm's definition on the 0..10 scale, each op
    applied with probability 0.5 (the Model Garden's prob_to_apply per layer, or 1 when unset): a
    Model Garden magnitude above 10 is clipped to 10 here; it classifies 1001 classes (a background
    class) where we use 1000; all but Conv-S train in bfloat16 on TPUs (-o
    run.mixed_precision=mixed_bfloat16 here; float32 by default). Hardware: batches of 4096 or 16384
    at 224-384 pixels need a TPU pod or a large GPU cluster, which we do not have; on fewer
    accelerators lower schedule.batch_size and scale optimizer.lr in proportion (linear scaling),
    untested here: no run of ours reproduces the figure."""


def _model_garden_mobilenetv4(model, *, input_size, bn_momentum, dropout, drop_path_rate, lr, weight_decay,
                              batch_size, epochs, warmup_epochs, magnitude, beta_1=0.9, epsilon=1e-7, min_lr=0.0,
                              ema_decay=0.0, mixup_alpha=0.0, cutmix_alpha=0.0, mix_probability=1.0):
    """The common shape of the Model Garden's MobileNetV4 ImageNet recipes [mg4]: AdamW, linear
    warm-up then cosine, label smoothing 0.1, Inception crop + flip, RandAugment N=2."""
    config = _imagenet(
        model,
        OptimizerConfig(name="adamw", lr=lr, momentum=beta_1, epsilon=epsilon),
        ScheduleConfig(epochs=epochs, batch_size=batch_size, warmup_epochs=warmup_epochs, decay="cosine",
                       per_batch=True, min_lr=min_lr),
        RegularizationConfig(weight_decay=weight_decay, weight_decay_skip_bn_and_bias=True, label_smoothing=0.1,
                             ema_decay=ema_decay, ema_warmup=False),
        dropout=dropout,
        bn_momentum=bn_momentum,
    )
    return dataclasses.replace(
        config,
        model=dataclasses.replace(config.model, input_size=input_size, drop_path_rate=drop_path_rate),
        data=dataclasses.replace(config.data, auto_augment="randaugment", randaugment_layers=2,
                                 randaugment_magnitude=min(magnitude, 10.0), mixup_alpha=mixup_alpha,
                                 cutmix_alpha=cutmix_alpha, mix_probability=mix_probability,
                                 mix_switch_probability=0.5),
    )


def _with_notes(fn):
    fn.__doc__ = fn.__doc__.rstrip() + "\n    " + _MG4_NOTES + "\n    "
    return fn


@register_preset("imagenet_mobilenetv4_conv_small")
@_with_notes
def imagenet_mobilenetv4_conv_small():
    """MobileNetV4-Conv-S on ImageNet at 224x224, the TF Model Garden's recipe [mg4]
    (imagenet_mobilenetv4_conv_small_tpu.yaml): AdamW (beta_1 0.6, beta_2 0.999, epsilon 1e-6,
    decoupled weight decay 0.01, no gradient clipping), lr 0.002 for batch 4096, 5-epoch linear
    warm-up (1,560 steps), cosine decay to 0 over 9,600 epochs (3,002,368 steps), label smoothing
    0.1, dropout 0.3, no stochastic depth, BatchNorm momentum 0.95, RandAugment N=2 M=9 (the Model
    Garden applies each op with probability 0.5, as here; translate_const 20 pixels), Inception crop
    + flip, weight EMA 0.9999 (dynamic_decay false: ema_warmup=false). Reaches 73.8 top-1 (the yaml's
    header, "@ ~9623 epochs"; Qin et al. 2024 table 5: 73.8). Not expressed: the Model Garden adds a
    coupled L2 of 1e-5 on the kernels on top of AdamW's decay (here, with adamw, weight_decay is
    AdamW's only); its BatchNorm epsilon is 1e-6 (ours is 1e-3); its EMA starts at step 1,560
    (here at step 0, with the same decay).
    """
    return _model_garden_mobilenetv4(
        "mobilenetv4_conv_small", input_size=224, bn_momentum=0.95, dropout=0.3, drop_path_rate=0.0, lr=0.002,
        weight_decay=0.01, batch_size=4096, epochs=9600, warmup_epochs=5.0, magnitude=9.0, beta_1=0.6,
        epsilon=1e-6, ema_decay=0.9999)


@register_preset("imagenet_mobilenetv4_conv_medium")
@_with_notes
def imagenet_mobilenetv4_conv_medium():
    """MobileNetV4-Conv-M on ImageNet at 256x256, the TF Model Garden's recipe [mg4]
    (imagenet_mobilenetv4_conv_medium_tpu.yaml): AdamW (beta_1 0.9, beta_2 0.999, epsilon 1e-7,
    decoupled weight decay 0.1), lr 0.004 for batch 4096, 5-epoch linear warm-up, cosine decay to 0
    over 500 epochs (156,000 steps), label smoothing 0.1, dropout 0.2, stochastic depth 0.075 by the
    linear rule over depth (flat_stochastic_depth_drop_rate false, as here), BatchNorm momentum
    0.997, RandAugment N=2 M=15, Inception crop + flip, no EMA. Reaches 79.9 top-1 (the yaml's
    header "@ 500 epochs"; Qin et al. 2024 table 5: 79.9). Not expressed: RandAugment magnitude 15
    (beyond the 0..10 scale, clipped to 10) and its prob_to_apply 0.7 (0.5 here).
    """
    return _model_garden_mobilenetv4(
        "mobilenetv4_conv_medium", input_size=256, bn_momentum=0.997, dropout=0.2, drop_path_rate=0.075, lr=0.004,
        weight_decay=0.1, batch_size=4096, epochs=500, warmup_epochs=5.0, magnitude=15.0)


@register_preset("imagenet_mobilenetv4_conv_large")
@_with_notes
def imagenet_mobilenetv4_conv_large():
    """MobileNetV4-Conv-L on ImageNet at 384x384, the TF Model Garden's recipe [mg4]
    (imagenet_mobilenetv4_conv_large_tpu.yaml): AdamW (beta_1 0.9, beta_2 0.999, epsilon 1e-7,
    decoupled weight decay 0.2), lr 0.004 for batch 16384, 20-epoch linear warm-up (1,560 steps),
    cosine decay to 0 over 500 epochs (39,000 steps), label smoothing 0.1, dropout 0.2, stochastic
    depth 0.2, BatchNorm momentum 0.997, RandAugment N=2 M=15, Mixup alpha 0.8 / CutMix alpha 1.0
    on 20% of the batches (switch probability 0.5), Inception crop + flip, no EMA. Reaches 82.92
    top-1 (the yaml's header "@ 500 epoches"; Qin et al. 2024 table 5: 82.9). Not expressed: its
    stochastic depth is flat (flat_stochastic_depth_drop_rate true: every block at 0.2) while
    model.drop_path_rate is linear over depth (block i of N at 0.2 * i / N, half the mean rate;
    -o model.drop_path_rate=0.4 matches the mean, at twice the last block's rate); RandAugment
    magnitude 15 clipped to 10, applied to every layer there (prob_to_apply unset) and with
    probability 0.5 here.
    """
    return _model_garden_mobilenetv4(
        "mobilenetv4_conv_large", input_size=384, bn_momentum=0.997, dropout=0.2, drop_path_rate=0.2, lr=0.004,
        weight_decay=0.2, batch_size=16384, epochs=500, warmup_epochs=20.0, magnitude=15.0, mixup_alpha=0.8,
        cutmix_alpha=1.0, mix_probability=0.2)


@register_preset("imagenet_mobilenetv4_hybrid_medium")
@_with_notes
def imagenet_mobilenetv4_hybrid_medium():
    """MobileNetV4-Hybrid-M on ImageNet at 256x256, the TF Model Garden's recipe [mg4]
    (imagenet_mobilenetv4_hybrid_medium_tpu.yaml): AdamW (beta_1 0.9, beta_2 0.999, epsilon 1e-7,
    decoupled weight decay 0.1), lr 0.016 for batch 16384, 20-epoch linear warm-up (1,560 steps),
    cosine decay to 0 over 500 epochs (39,000 steps), label smoothing 0.1, dropout 0.2, stochastic
    depth 0.075 by the linear rule over depth (as here), BatchNorm momentum 0.997, RandAugment N=2
    M=15 (translate_const 10 pixels), Inception crop + flip, no EMA. Reaches 80.7 top-1 (the yaml's
    header "@ 500 epochs"; Qin et al. 2024 table 5: 80.7). Not expressed: RandAugment magnitude 15
    clipped to 10, and its prob_to_apply 0.7 (0.5 here).
    """
    return _model_garden_mobilenetv4(
        "mobilenetv4_hybrid_medium", input_size=256, bn_momentum=0.997, dropout=0.2, drop_path_rate=0.075,
        lr=0.016, weight_decay=0.1, batch_size=16384, epochs=500, warmup_epochs=20.0, magnitude=15.0)


@register_preset("imagenet_mobilenetv4_hybrid_large")
@_with_notes
def imagenet_mobilenetv4_hybrid_large():
    """MobileNetV4-Hybrid-L on ImageNet at 384x384, the TF Model Garden's recipe [mg4]
    (imagenet_mobilenetv4_hybrid_large_tpu.yaml): AdamW (beta_1 0.9, beta_2 0.999, epsilon 1e-7,
    decoupled weight decay 0.2), lr 0.01 for batch 16384, 20-epoch linear warm-up (1,560 steps),
    cosine decay over 500 epochs (39,000 steps) to 1e-5 (alpha 0.001 of the peak), label smoothing
    0.1, dropout 0.2, stochastic depth 0.35 by the linear rule over depth (as here), BatchNorm
    momentum 0.997, RandAugment N=2 M=15, Mixup alpha 0.8 / CutMix alpha 1.0 on 30% of the batches
    (switch probability 0.5), Inception crop + flip, no EMA. Reaches 83.7 top-1 per the yaml's
    header ("@ 500 epochs"); Qin et al. 2024 table 5 reports 83.4 (and 87 with the paper's
    distillation, which we do not have). Not expressed: RandAugment magnitude 15 clipped to 10,
    applied to every layer there (prob_to_apply unset) and with probability 0.5 here.
    """
    return _model_garden_mobilenetv4(
        "mobilenetv4_hybrid_large", input_size=384, bn_momentum=0.997, dropout=0.2, drop_path_rate=0.35, lr=0.01,
        min_lr=1e-5, weight_decay=0.2, batch_size=16384, epochs=500, warmup_epochs=20.0, magnitude=15.0,
        mixup_alpha=0.8, cutmix_alpha=1.0, mix_probability=0.3)
