"""Named training augmentations and the evaluation crop.

Every function takes a uint8 (H, W, 3) image of any size and returns a
float32 (height, width, 3) image in the raw pixel range [0, 255]:
normalization belongs to the model's first layer, not to the pipeline.
Randomness is stateless: each augmentation gets a shape-[2] integer `seed`,
so a pipeline's output is a function of its seed alone.

The geometric augmentations above (AUGMENTATIONS, one per run) are followed by optional extra
stages on the (height, width) image, built by `image_stages` from the data config:
AutoAugment or RandAugment (autoaugment.py), then random erasing. Each stage is a function
(image, seed) -> image that keeps the shape and the [0, 255] range. Mixup / CutMix act on the
batch (mixing.py).
"""

import math

import tensorflow as tf

from mobilenets.data.autoaugment import auto_augment, rand_augment
from mobilenets.errors import ConfigError

CIFAR_PADDING = 4
INCEPTION_AREA_RANGE = (0.08, 1.0)
INCEPTION_ASPECT_RANGE = (3.0 / 4.0, 4.0 / 3.0)


def resize(image, size):
    """Bilinear resize to `size` as float32; exact (no resampling) when the size already matches."""
    image = tf.cast(image, tf.float32)
    if tuple(image.shape[:2]) == tuple(size):
        return image
    image = tf.image.resize(image, size, method="bilinear")
    image = tf.clip_by_value(image, 0.0, 255.0)
    image.set_shape([size[0], size[1], 3])
    return image


def center_crop(image, size, crop_fraction):
    """Evaluation transform: central window with the output's aspect ratio, resized to `size`.

    The window is `crop_fraction` of the largest such window (0.875 is the
    Inception/ImageNet convention); with crop_fraction 1.0 and an image already
    of `size`, the stored pixels come out unchanged.
    """
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    out_h, out_w = size
    wider = width * out_h > height * out_w
    window_h = tf.where(wider, height, (width * out_h) // out_w)
    window_w = tf.where(wider, (height * out_w) // out_h, width)
    if crop_fraction != 1.0:
        window_h = tf.maximum(1, tf.cast(tf.round(tf.cast(window_h, tf.float32) * crop_fraction), tf.int32))
        window_w = tf.maximum(1, tf.cast(tf.round(tf.cast(window_w, tf.float32) * crop_fraction), tf.int32))
    top = (height - window_h) // 2
    left = (width - window_w) // 2
    return resize(image[top : top + window_h, left : left + window_w], size)


def no_augmentation(image, size, seed):
    """Resize only (identity at the native size)."""
    del seed
    return resize(image, size)


def flip(image, size, seed):
    """Random horizontal flip."""
    return resize(tf.image.stateless_random_flip_left_right(image, seed), size)


def cifar(image, size, seed):
    """The CIFAR recipe: zero-pad 4 pixels, random crop back to the input size, random flip."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    input_shape = image.shape.as_list() if image.shape.is_fully_defined() else tf.shape(image)
    padded = tf.pad(image, [[CIFAR_PADDING, CIFAR_PADDING], [CIFAR_PADDING, CIFAR_PADDING], [0, 0]])
    image = tf.image.stateless_random_crop(padded, input_shape, crop_seed)
    return flip(image, size, flip_seed)


def inception(image, size, seed):
    """Inception-style random resized crop (area 8%..100%, aspect 3/4..4/3) plus random flip."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4]),
        seed=crop_seed,
        min_object_covered=0.0,
        aspect_ratio_range=INCEPTION_ASPECT_RANGE,
        area_range=INCEPTION_AREA_RANGE,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, crop_size)
    return flip(image, size, flip_seed)


AUGMENTATIONS = {
    "none": no_augmentation,
    "flip": flip,
    "cifar": cifar,
    "inception": inception,
}


def get_augmentation(name):
    """The augmentation function registered as `name`."""
    if name not in AUGMENTATIONS:
        raise ConfigError(f"unknown augmentation '{name}'; choose one of {sorted(AUGMENTATIONS)}")
    return AUGMENTATIONS[name]


# ----- extra per-image stages ----------------------------------------------------------------------

AUTO_AUGMENTS = ("none", "autoaugment", "randaugment")
ERASING_AREA = (0.02, 0.33)  # torchvision's RandomErasing scale; Zhong et al. 2020 use (0.02, 0.4)
ERASING_ASPECT = (0.3, 1 / 0.3)  # Zhong et al.'s r1 = 0.3, and 1 / r1
ERASING_ATTEMPTS = 10  # timm and torchvision try 10 rectangles, then leave the image as it is


def random_erasing(image, seed, probability, area=ERASING_AREA, aspect=ERASING_ASPECT, attempts=ERASING_ATTEMPTS):
    """Random erasing (Zhong et al. 2020, Algorithm 1): with `probability`, one rectangle of
    `area` (fractions of the image) and aspect ratio in `aspect` (log-uniform, as timm and
    torchvision draw it), placed uniformly inside the image, is filled with random values in
    [0, 255] (the paper's fill). The first of `attempts` drawn sizes that fits is used; when none
    fits, the image is unchanged."""
    shape = image.shape
    image = tf.cast(image, tf.float32)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    size_seed, place_seed, fill_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    draws = tf.random.stateless_uniform([attempts, 2], size_seed)
    target = tf.cast(height * width, tf.float32) * (area[0] + (area[1] - area[0]) * draws[:, 0])
    ratio = tf.exp(math.log(aspect[0]) + (math.log(aspect[1]) - math.log(aspect[0])) * draws[:, 1])
    erase_h = tf.cast(tf.round(tf.sqrt(target * ratio)), tf.int32)
    erase_w = tf.cast(tf.round(tf.sqrt(target / ratio)), tf.int32)
    fits = (erase_h >= 1) & (erase_w >= 1) & (erase_h < height) & (erase_w < width)
    first = tf.argmax(tf.cast(fits, tf.int32), output_type=tf.int32)
    erase_h, erase_w = erase_h[first], erase_w[first]
    place = tf.random.stateless_uniform([3], place_seed)
    top = tf.minimum(tf.cast(place[0] * tf.cast(height - erase_h + 1, tf.float32), tf.int32), height - erase_h)
    left = tf.minimum(tf.cast(place[1] * tf.cast(width - erase_w + 1, tf.float32), tf.int32), width - erase_w)
    rows, cols = tf.range(height), tf.range(width)
    inside = (((rows >= top) & (rows < top + erase_h))[:, None] & ((cols >= left) & (cols < left + erase_w))[None, :])
    erase = inside & tf.reduce_any(fits) & (place[2] < probability)
    fill = tf.random.stateless_uniform(tf.shape(image), fill_seed, 0.0, 255.0)
    out = tf.where(erase[:, :, None], fill, image)
    out.set_shape(shape)
    return out


def image_stages(auto_augment_name="none", randaugment_layers=2, randaugment_magnitude=9.0,
                 randaugment_magnitude_std=0.0, random_erasing_probability=0.0, random_erasing_area=ERASING_AREA):
    """The extra per-image stages, in order: functions (image, seed) -> image for make_dataset's
    `stages`. auto_augment_name: 'none', 'autoaugment' (the ImageNet policy) or 'randaugment'
    (N = randaugment_layers, M = randaugment_magnitude on 0..10); random_erasing_probability:
    0 leaves it out."""
    if auto_augment_name not in AUTO_AUGMENTS:
        raise ConfigError(f"unknown auto_augment '{auto_augment_name}'; choose one of {list(AUTO_AUGMENTS)}")
    stages = []
    if auto_augment_name == "autoaugment":
        stages.append(auto_augment)
    elif auto_augment_name == "randaugment":
        layers, magnitude, std = int(randaugment_layers), float(randaugment_magnitude), float(randaugment_magnitude_std)
        stages.append(lambda image, seed: rand_augment(image, seed, layers, magnitude, std))
    if random_erasing_probability > 0:
        probability, area = float(random_erasing_probability), tuple(float(a) for a in random_erasing_area)
        stages.append(lambda image, seed: random_erasing(image, seed, probability, area))
    return tuple(stages)
