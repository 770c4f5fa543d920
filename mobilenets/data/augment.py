"""Named training augmentations and the evaluation crop.

Every function takes a uint8 (H, W, 3) image of any size and returns a
float32 (height, width, 3) image in the raw pixel range [0, 255]:
normalization belongs to the model's first layer, not to the pipeline.
Randomness is stateless: each augmentation gets a shape-[2] integer `seed`,
so a pipeline's output is a function of its seed alone.
"""

import tensorflow as tf

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
