"""`make_dataset`: one entry point from a dataset name to batched, prefetched
(image, label) pairs.

Output convention (shared with the models): images float32 NHWC in the raw
pixel range [0, 255] (the model normalizes in its first layer), labels int32
of shape (batch,). Training: seeded shuffle that changes every epoch,
augmentation, `drop_remainder=True`. Evaluation: file order, no augmentation,
every example kept.

Training augmentation, in order: the geometric transform `augment` (crop, flip, resize), the
extra per-image `stages` (AutoAugment / RandAugment, random erasing: augment.image_stages), then
on the batch `mix` (Mixup / CutMix: mixing.MixupCutmix), which turns the labels into soft ones,
float32 (batch, classes). Every draw is stateless: each example gets a seed pair from the
pipeline's seed, the geometric transform uses it as it is (so runs without the extra stages
are unchanged), stage k uses it folded with k, the batch mixing folded with MIX_STREAM.
"""

import inspect
import numbers

import tensorflow as tf

from mobilenets.data import cifar, folder, imagenet, npz, synthetic
from mobilenets.data.augment import center_crop, get_augmentation
from mobilenets.data.common import Request
from mobilenets.errors import ConfigError, DataError

SOURCES = {
    "cifar10": cifar,
    "cifar100": cifar,
    "imagenet2012": imagenet,
    "folder": folder,
    "npz": npz,
    "synthetic": synthetic,
}
ALIASES = {"imagenet": "imagenet2012", "cifar-10": "cifar10", "cifar-100": "cifar100"}
DEFAULT_SHUFFLE_BUFFER = 10_000  # for records too large to shuffle a whole split at once
DEFAULT_IMAGE_SIZE = (224, 224)  # when the images have no common native size
MIX_STREAM = 1000  # seed stream of the batch mixing (stage k of `stages` uses stream k)


def list_datasets():
    """Names accepted by `make_dataset` and `dataset_info`."""
    return sorted(SOURCES)


def dataset_info(name, data_dir=None, **options):
    """DatasetInfo(name, num_classes, image_size, splits, default_augment, eval_crop_fraction).

    The split sizes are those of the copy in `data_dir`, counted cheaply (CIFAR batch files or
    archive members, TFRecord record headers, image files), so that a partial copy plans the
    steps it holds; without a local copy (tfds), the official sizes.
    """
    name, module = _source(name)
    _check_options(name, module.info, options)
    return module.info(name, data_dir, **options)


def make_dataset(
    name,
    split,
    batch_size,
    training,
    data_dir=None,
    image_size=None,
    seed=0,
    *,
    augment=None,
    eval_crop_fraction=None,
    shuffle_buffer=None,
    stages=(),
    mix=None,
    **options,
):
    """A tf.data.Dataset of (images float32 (B, H, W, 3) in [0, 255], labels int32 (B,); float32 (B, C) with `mix`).

    name: one of `list_datasets()`; split: 'train', 'validation'/'val' or 'test'
        (CIFAR's 'validation' is its test set).
    data_dir: where the data is; what each source accepts is in its module
        docstring (archives, extracted folders, TFRecord shards, a tfds dir...).
    image_size: int or (height, width); default: the images' native size, else 224.
    seed: shuffling and augmentation seed; same seed, same batches, epoch by epoch.
    augment: training augmentation, a key of AUGMENTATIONS (default per dataset).
    eval_crop_fraction: evaluation central crop (default per dataset: 1.0 CIFAR, 0.875 ImageNet).
    shuffle_buffer: default: the whole split when records are small, else 10,000.
    stages: training only: extra per-image augmentations after `augment`, functions
        (image float32 (H, W, 3) in [0, 255], seed shape [2]) -> image (augment.image_stages).
    mix: training only: a batch augmentation (images, int labels, seeds (B, 2)) -> (images,
        soft labels (B, C)), e.g. mixing.MixupCutmix; the labels come out float32 (B, C).
    options: source-specific, e.g. download (CIFAR), label_offset / manual_dir
        (ImageNet), validate (folder trees), validation_fraction / split_seed
        (npz, folder trees), num_classes / num_examples (synthetic).
    """
    name, module = _source(name)
    _check_options(name, module.load, options)
    _check_batch_size(batch_size)
    size = _image_size(image_size)
    transform = get_augmentation(augment or module.DEFAULT_AUGMENT)
    fraction = _eval_crop_fraction(module, eval_crop_fraction)
    request = Request(name, str(split), None if data_dir is None else str(data_dir), bool(training), int(seed), size)
    source = module.load(request, **options)
    size = size or source.native_size or DEFAULT_IMAGE_SIZE
    _check_enough_examples(source, name, split, batch_size, training)
    if training:
        images = _augmented_examples(source, transform, size, seed, shuffle_buffer, tuple(stages), mix is not None)
    else:
        images = _center_cropped_examples(source, size, fraction)
    if source.skip_errors:
        images = images.ignore_errors()
    return _batches(images, batch_size, training, mix)


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")


def _eval_crop_fraction(module, eval_crop_fraction):
    """The evaluation central crop: `eval_crop_fraction`, else the source's default."""
    fraction = module.EVAL_CROP_FRACTION if eval_crop_fraction is None else eval_crop_fraction
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"eval_crop_fraction must be in (0, 1], got {fraction}")
    return fraction


def _check_enough_examples(source, name, split, batch_size, training):
    if source.num_examples == 0 or (training and source.num_examples is not None and source.num_examples < batch_size):
        raise DataError(
            f"{name} '{split}' has {source.num_examples} examples, fewer than batch_size {batch_size}: "
            f"training would see no batch; lower batch_size"
        )


def _records(source):
    """(the source's (record, label) pairs, cached when it asks for it; the function decoding a record)."""
    examples = source.examples.cache() if source.cache else source.examples
    return examples, source.decode or (lambda image: image)


def _augmented_examples(source, transform, size, seed, shuffle_buffer, stages, mixed):
    """Training (image, label[, mixing seed]) pairs: shuffled anew every epoch, each image augmented with
    its own stateless seed pair (the geometric `transform`, then stage k with the pair folded with k)."""
    examples, decode = _records(source)
    buffer = shuffle_buffer or (
        source.num_examples if source.full_shuffle and source.num_examples else DEFAULT_SHUFFLE_BUFFER
    )
    # One stateless seed pair per example, new every epoch, fixed by `seed`.
    seed_pairs = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
    shuffled = examples.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)

    def augment_example(example, seed_pair):
        image = transform(decode(example[0]), size, seed_pair)
        for stream, stage in enumerate(stages, 1):
            image = stage(image, tf.random.experimental.stateless_fold_in(seed_pair, stream))
        if not mixed:
            return image, example[1]
        return image, example[1], tf.random.experimental.stateless_fold_in(seed_pair, MIX_STREAM)

    return tf.data.Dataset.zip((shuffled, seed_pairs)).map(augment_example, num_parallel_calls=tf.data.AUTOTUNE)


def _center_cropped_examples(source, size, fraction):
    """Evaluation (image, label) pairs in file order: the central `fraction` of each image, resized to `size`."""
    examples, decode = _records(source)
    return examples.map(
        lambda record, label: (center_crop(decode(record), size, fraction), label),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def _batches(images, batch_size, training, mix):
    """Batched and prefetched; training drops the last partial batch and mixes whole batches (`mix`)."""
    batches = images.batch(batch_size, drop_remainder=training, num_parallel_calls=tf.data.AUTOTUNE)
    if training and mix is not None:
        batches = batches.map(mix, num_parallel_calls=tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE)


def _source(name):
    key = ALIASES.get(str(name).lower(), str(name).lower())
    if key not in SOURCES:
        raise ConfigError(f"unknown dataset '{name}'; choose one of {list_datasets()}")
    return key, SOURCES[key]


def _check_options(name, function, options):
    accepted = [p.name for p in inspect.signature(function).parameters.values() if p.kind == p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"dataset '{name}' has no option '{unknown[0]}'; it accepts {accepted}")


def _image_size(image_size):
    if image_size is None:
        return None
    size = (image_size, image_size) if isinstance(image_size, numbers.Integral) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, numbers.Integral) and s > 0 for s in size):
        raise ConfigError(f"image_size must be an int or (height, width) of positive ints, got {image_size!r}")
    return tuple(int(s) for s in size)
