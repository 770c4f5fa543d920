"""Training and validation data of a config, through `mobilenets.data.make_dataset`.

Resumable data order: epoch e of a run reads a pipeline built with the seed `epoch_seed(seed, e)`,
so its shuffling and augmentation depend on (run.seed, e) only, never on how many epochs this
process has already iterated. A run restarted at epoch e sees the batches an uninterrupted run
sees at epoch e.

Training batches carry the extra augmentations of config.data (augmentation_stages, batch_mixing):
AutoAugment / RandAugment and random erasing per image, Mixup / CutMix per batch. With Mixup or
CutMix on, the training labels are soft, float32 (batch, classes), label-smoothed by
regularization.label_smoothing before mixing (the loss takes them as they are, see objective.py);
validation batches keep integer labels and no augmentation.
"""

import dataclasses
from typing import Optional

import numpy as np

from mobilenets.data import dataset_info, make_dataset
from mobilenets.data.augment import image_stages
from mobilenets.data.mixing import MixupCutmix
from mobilenets.errors import DataError
from mobilenets.runs import source_options, validation_split


DATA_STREAM, DROPOUT_STREAM, PRECISE_BN_STREAM = 0, 1, 2


def epoch_seed(seed, epoch, stream=DATA_STREAM):
    """A 31-bit seed that is a pure function of (run seed, epoch, stream)."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(stream)]).generate_state(1)[0] & 0x7FFFFFFF)


@dataclasses.dataclass(frozen=True)
class DataPlan:
    """What the trainer needs to know about the data before building anything."""

    name: str
    data_dir: object
    options: dict
    num_classes: int
    train_examples: int
    validation_split: Optional[str]  # 'validation', else 'test' (CIFAR's validation split), else None
    steps_per_epoch: int
    validation_examples: Optional[int] = None  # None when unknown or there is no validation split

    @property
    def has_validation(self):
        return self.validation_split is not None


def plan_data(config):
    """DataPlan of `config`: class count, split sizes and steps per epoch (capped by run.steps_per_epoch).

    The sizes are those of the data on disk (dataset_info counts them), so a partial copy of a
    dataset gets the steps it holds and every schedule ends where it should.
    """
    options = source_options(config)
    info = dataset_info(config.data.dataset, config.data.data_dir, **options)
    num_classes = config.num_classes or info.num_classes
    if not num_classes:
        raise DataError(f"cannot tell the number of classes of {config.data.dataset!r}; set model.num_classes")
    train_examples = info.splits.get("train") or 0
    batch = config.schedule.batch_size
    steps = train_examples // batch if train_examples else None
    if config.run.steps_per_epoch:
        steps = min(steps, config.run.steps_per_epoch) if steps else config.run.steps_per_epoch
    if not steps:
        raise DataError(f"{config.data.dataset!r} has {train_examples or 'an unknown number of'} training examples, "
                        f"not one batch of schedule.batch_size={batch}: lower the batch size or set "
                        f"run.steps_per_epoch")
    held_out = validation_split(info.splits)
    return DataPlan(config.data.dataset, config.data.data_dir, options, int(num_classes), train_examples, held_out,
                    int(steps), info.splits.get(held_out) if held_out else None)


def _image_size(config):
    return (config.model.input_size, config.model.input_size)


def augmentation_stages(config):
    """The extra per-image training stages of config.data (AutoAugment / RandAugment, random erasing)."""
    d = config.data
    return image_stages(d.auto_augment, d.randaugment_layers, d.randaugment_magnitude, d.randaugment_magnitude_std,
                        d.random_erasing, (d.random_erasing_min_area, d.random_erasing_max_area))


def batch_mixing(config, num_classes):
    """MixupCutmix of config.data (label-smoothed soft labels), or None when Mixup and CutMix are off."""
    d = config.data
    if not (d.mixup_alpha or d.cutmix_alpha):
        return None
    return MixupCutmix(num_classes, d.mixup_alpha, d.cutmix_alpha, d.mix_probability, d.mix_switch_probability,
                       config.regularization.label_smoothing)


def training_dataset(config, plan, epoch, stream=DATA_STREAM, mix=True):
    """The batches of `epoch` (global batch, exactly plan.steps_per_epoch of them); another `stream`
    draws another order and augmentation of the same images. mix: Mixup / CutMix as configured."""
    data = config.data
    dataset = make_dataset(plan.name, "train", config.schedule.batch_size, training=True, data_dir=plan.data_dir,
                           image_size=_image_size(config), seed=epoch_seed(config.run.seed, epoch, stream),
                           augment=data.augmentation, shuffle_buffer=data.shuffle_buffer,
                           stages=augmentation_stages(config),
                           mix=batch_mixing(config, plan.num_classes) if mix else None, **plan.options)
    return dataset.take(plan.steps_per_epoch)


def precise_bn_batches(config, plan, epoch):
    """The training batches whose statistics precise BN averages after `epoch` (run.precise_bn_images
    images in whole batches, at most an epoch's; augmented as training is, unmixed)."""
    batches = min(plan.steps_per_epoch, -(-config.run.precise_bn_images // config.schedule.batch_size))
    return training_dataset(config, plan, epoch, PRECISE_BN_STREAM, mix=False).take(batches)


def validation_dataset(config, plan, batch_size=None):
    """The validation split (plan.validation_split) in file order, or None when the dataset has none."""
    if not plan.has_validation:
        return None
    return make_dataset(plan.name, plan.validation_split, batch_size or config.schedule.batch_size, training=False,
                        data_dir=plan.data_dir, image_size=_image_size(config),
                        eval_crop_fraction=config.data.eval_crop_fraction, **plan.options)

