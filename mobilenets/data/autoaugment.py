"""AutoAugment (Cubuk et al. 2019, its ImageNet policy) and RandAugment (Cubuk et al. 2020) as
stateless TensorFlow ops for tf.data.

Each policy takes one float32 (H, W, 3) image in [0, 255] and a shape-[2] integer seed, and
returns a float32 image of the same shape in [0, 255] whose pixels are whole numbers (the ops
work on 8-bit values, as PIL does): same seed, same output.

Why our own and not the TF Model Garden's `official.vision.ops.augment`:

- tf-models-official does not install beside our pins: its newest release (2.20.0) requires
  tensorflow~=2.20.0 and tensorflow-text~=2.20.0, and `pip install --dry-run tf-models-official`
  resolves it by downgrading tensorflow to 2.20.0 and tf_keras to 2.20.1 (November 2026).
- Its ops draw with stateful `tf.random.uniform` (and NumPy for Gaussian noise), so a pipeline
  using them would not be a function of its seed; ours draw with stateless ops from the example's
  seed, which is what makes an interrupted run resume onto the batches an uninterrupted run sees
  (mobilenets/training/inputs.py).

The ops follow the Model Garden's TF implementations of PIL's operations (equalize, autocontrast,
sharpness and the blend-based enhancers, on 8-bit values), with these definitions from timm
(`timm/data/auto_augment.py`, Ross Wightman), the reference of the PyTorch recipes:

- AutoAugment: timm's `original` policy, the paper's ImageNet policy (25 sub-policies of two
  (op, probability, magnitude) steps; one sub-policy drawn per image), with the paper's posterize
  (keep 4 + int(4 m / 10) bits).
- RandAugment: timm's `rand-m{M}-n{N}-mstd{S}-inc1`: N ops drawn with replacement from the 15
  below, each applied with probability 0.5, at magnitude M in [0, 10] (plus Gaussian noise of
  std S when S > 0, clipped to [0, 10]); the "increasing" variants, so that a larger M is a
  stronger distortion for every op (the paper's meaning of M).

Magnitude m in [0, 10] maps to: rotate +-30 m/10 degrees; shear +-0.3 m/10; translate +-0.45 m/10
of the side; color/contrast/brightness/sharpness factor 0.1 + 1.8 m/10 (AutoAugment) or
max(0.1, 1 +- 0.9 m/10) (RandAugment); solarize threshold 256 m/10 (AutoAugment) or
256 - 256 m/10 (RandAugment); solarize-add 110 m/10; posterize as above (RandAugment keeps
4 - int(4 m/10) bits). Signs (+-) are drawn per image. Geometric ops interpolate bilinearly and
fill uncovered pixels with grey (128), timm's default fill.
"""

import math

import tensorflow as tf

LEVEL_DENOM = 10.0  # magnitudes are on the papers' 0..10 scale
FILL = 128.0  # grey for pixels a geometric op uncovers (timm's _FILL)
RANDAUGMENT_APPLY_PROBABILITY = 0.5  # timm's rand_augment_ops(prob=0.5)

# The AutoAugment paper's ImageNet policy (Cubuk et al. 2019, appendix; timm's
# auto_augment_policy_original): (op, probability, magnitude) pairs.
IMAGENET_POLICY = (
    (("PosterizeOriginal", 0.4, 8), ("Rotate", 0.6, 9)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
    (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
    (("PosterizeOriginal", 0.6, 7), ("PosterizeOriginal", 0.6, 6)),
    (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
    (("Equalize", 0.4, 4), ("Rotate", 0.8, 8)),
    (("Solarize", 0.6, 3), ("Equalize", 0.6, 7)),
    (("PosterizeOriginal", 0.8, 5), ("Equalize", 1.0, 2)),
    (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
    (("Equalize", 0.6, 8), ("PosterizeOriginal", 0.4, 6)),
    (("Rotate", 0.8, 8), ("Color", 0.4, 0)),
    (("Rotate", 0.4, 9), ("Equalize", 0.6, 2)),
    (("Equalize", 0.0, 7), ("Equalize", 0.8, 8)),
    (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
    (("Color", 0.8, 8), ("Solarize", 0.8, 7)),
    (("Sharpness", 0.4, 7), ("Invert", 0.6, 8)),
    (("ShearX", 0.6, 5), ("Equalize", 1.0, 9)),
    (("Color", 0.4, 0), ("Equalize", 0.6, 3)),
    (("Equalize", 0.4, 7), ("Solarize", 0.2, 4)),
    (("Solarize", 0.6, 5), ("AutoContrast", 0.6, 5)),
    (("Invert", 0.6, 4), ("Equalize", 1.0, 8)),
    (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
    (("Equalize", 0.8, 8), ("Equalize", 0.6, 3)),
)

# timm's _RAND_INCREASING_TRANSFORMS (Cutout is left out there too: random erasing does it).
RANDAUGMENT_OPS = (
    "AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing", "SolarizeAdd",
    "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing", "ShearX", "ShearY",
    "TranslateXRel", "TranslateYRel",
)


# ----- the image ops: float32 (H, W, 3) with whole values in [0, 255] -> the same --------------


def _to_pixels(image):
    return tf.clip_by_value(tf.round(image), 0.0, 255.0)


def _blend(degenerate, image, factor):
    """PIL's ImageEnhance: degenerate + factor * (image - degenerate), clipped to 8 bits."""
    return _to_pixels(degenerate + factor * (image - degenerate))


def _luma(image):
    """PIL's RGB -> L conversion (ITU-R 601-2), rounded, shape (H, W, 1)."""
    return tf.round(tf.reduce_sum(image * tf.constant([0.299, 0.587, 0.114]), axis=-1, keepdims=True))


def auto_contrast(image):
    """PIL ImageOps.autocontrast: each channel stretched to 0..255 (unchanged when constant)."""
    low = tf.reduce_min(image, axis=[0, 1], keepdims=True)
    high = tf.reduce_max(image, axis=[0, 1], keepdims=True)
    stretched = _to_pixels((image - low) * (255.0 / tf.maximum(high - low, 1.0)))
    return tf.where(high > low, stretched, image)


def equalize(image):
    """PIL ImageOps.equalize, per channel (the Model Garden's TF form of PIL's lookup table,
    for the three channels at once)."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    values = tf.reshape(tf.transpose(tf.cast(image, tf.int32), [2, 0, 1]), [3, -1])  # (3, H * W)
    histogram = tf.reshape(tf.math.bincount(values + 256 * tf.range(3)[:, None], minlength=768, maxlength=768),
                           [3, 256])
    last = tf.gather(histogram, tf.reduce_max(values, axis=1), batch_dims=1)  # count of the last non-empty bin
    step = (tf.reduce_sum(histogram, axis=1) - last) // 255
    safe_step = tf.maximum(step, 1)[:, None]
    lut = (tf.cumsum(histogram, axis=1) + safe_step // 2) // safe_step
    lut = tf.clip_by_value(tf.concat([tf.zeros([3, 1], tf.int32), lut[:, :-1]], 1), 0, 255)
    equalized = tf.where(step[:, None] > 0, tf.gather(lut, values, batch_dims=1), values)
    return tf.transpose(tf.reshape(tf.cast(equalized, tf.float32), [3, height, width]), [1, 2, 0])


def invert(image):
    return 255.0 - image


def posterize(image, bits):
    """Keeps the `bits` (0..8) most significant bits of each value."""
    step = tf.pow(2.0, 8.0 - tf.cast(bits, tf.float32))
    return tf.floor(image / step) * step


def solarize(image, threshold):
    """Inverts the values >= threshold (0..256; 256 changes nothing)."""
    return tf.where(image < tf.cast(threshold, tf.float32), image, 255.0 - image)


def solarize_add(image, addition, threshold=128.0):
    """Adds `addition` to the values below `threshold` (clipped to 255)."""
    return tf.where(image < threshold, tf.minimum(image + tf.cast(addition, tf.float32), 255.0), image)


def color(image, factor):
    """PIL ImageEnhance.Color: blend with the grey version (0: grey, 1: unchanged)."""
    return _blend(tf.broadcast_to(_luma(image), tf.shape(image)), image, factor)


def contrast(image, factor):
    """PIL ImageEnhance.Contrast: blend with the image's mean grey level."""
    mean = tf.round(tf.reduce_mean(_luma(image)))
    return _blend(tf.fill(tf.shape(image), mean), image, factor)


def brightness(image, factor):
    """PIL ImageEnhance.Brightness: blend with black."""
    return _blend(tf.zeros_like(image), image, factor)


def sharpness(image, factor):
    """PIL ImageEnhance.Sharpness: blend with the SMOOTH-filtered image (borders kept)."""
    kernel = tf.constant([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
    smooth = _to_pixels(tf.nn.depthwise_conv2d(image[None], kernel, [1, 1, 1, 1], "VALID")[0])
    interior = tf.pad(tf.ones_like(smooth), [[1, 1], [1, 1], [0, 0]])
    degenerate = tf.where(interior > 0, tf.pad(smooth, [[1, 1], [1, 1], [0, 0]]), image)
    return _blend(degenerate, image, factor)


def _transform(image, matrix):
    """Projective transform; `matrix` [a0, a1, a2, b0, b1, b2] maps an output pixel (x, y) to the
    input point (a0 x + a1 y + a2, b0 x + b1 y + b2), as PIL's Image.transform(AFFINE) does."""
    row = tf.concat([tf.cast(tf.stack(matrix), tf.float32), tf.zeros([2])], 0)[None]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=row, output_shape=tf.shape(image)[:2], fill_value=FILL,
        interpolation="BILINEAR", fill_mode="CONSTANT")[0]
    return _to_pixels(out)


def rotate(image, degrees):
    """Rotation about the image centre."""
    radians = tf.cast(degrees, tf.float32) * (math.pi / 180.0)
    height, width = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
    cos, sin = tf.cos(radians), tf.sin(radians)
    x_offset = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2.0
    y_offset = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2.0
    return _transform(image, [cos, -sin, x_offset, sin, cos, y_offset])


def shear_x(image, level):
    """PIL's (1, level, 0, 0, 1, 0) affine; PIL maps pixel centres, hence the level / 2 offset."""
    return _transform(image, [1.0, level, 0.5 * level, 0.0, 1.0, 0.0])


def shear_y(image, level):
    return _transform(image, [1.0, 0.0, 0.0, level, 1.0, 0.5 * level])


def translate_x(image, fraction):
    """Shift by `fraction` of the width."""
    pixels = fraction * tf.cast(tf.shape(image)[1], tf.float32)
    return _transform(image, [1.0, 0.0, pixels, 0.0, 1.0, 0.0])


def translate_y(image, fraction):
    pixels = fraction * tf.cast(tf.shape(image)[0], tf.float32)
    return _transform(image, [1.0, 0.0, 0.0, 0.0, 1.0, pixels])


# ----- magnitude -> argument (timm's LEVEL_TO_ARG), for a magnitude tensor and a sign of +-1 -----


def _enhance(level, sign):
    del sign
    return level / LEVEL_DENOM * 1.8 + 0.1


def _enhance_increasing(level, sign):
    return tf.maximum(0.1, 1.0 + sign * level / LEVEL_DENOM * 0.9)


def _fraction(level, scale):
    return tf.floor(level / LEVEL_DENOM * scale)


OPS = {  # name: (op, level -> argument or None)
    "AutoContrast": (auto_contrast, None),
    "Equalize": (equalize, None),
    "Invert": (invert, None),
    "Rotate": (rotate, lambda level, sign: sign * level / LEVEL_DENOM * 30.0),
    "PosterizeOriginal": (posterize, lambda level, sign: _fraction(level, 4.0) + 4.0),
    "PosterizeIncreasing": (posterize, lambda level, sign: 4.0 - _fraction(level, 4.0)),
    "Solarize": (solarize, lambda level, sign: _fraction(level, 256.0)),
    "SolarizeIncreasing": (solarize, lambda level, sign: 256.0 - _fraction(level, 256.0)),
    "SolarizeAdd": (solarize_add, lambda level, sign: _fraction(level, 110.0)),
    "Color": (color, _enhance),
    "ColorIncreasing": (color, _enhance_increasing),
    "Contrast": (contrast, _enhance),
    "ContrastIncreasing": (contrast, _enhance_increasing),
    "Brightness": (brightness, _enhance),
    "BrightnessIncreasing": (brightness, _enhance_increasing),
    "Sharpness": (sharpness, _enhance),
    "SharpnessIncreasing": (sharpness, _enhance_increasing),
    "ShearX": (shear_x, lambda level, sign: sign * level / LEVEL_DENOM * 0.3),
    "ShearY": (shear_y, lambda level, sign: sign * level / LEVEL_DENOM * 0.3),
    "TranslateXRel": (translate_x, lambda level, sign: sign * level / LEVEL_DENOM * 0.45),
    "TranslateYRel": (translate_y, lambda level, sign: sign * level / LEVEL_DENOM * 0.45),
}


def apply_op(name, image, level, sign):
    """`image` after op `name` at magnitude `level` (0..10) with direction `sign` (+-1)."""
    op, argument = OPS[name]
    if argument is None:
        return op(image)
    return op(image, argument(tf.cast(level, tf.float32), tf.cast(sign, tf.float32)))


# ----- the policies ------------------------------------------------------------------------------


def _sign(uniform):
    return tf.where(uniform < 0.5, -1.0, 1.0)


def _index(uniform, count):
    return tf.minimum(tf.cast(tf.floor(uniform * count), tf.int32), count - 1)


def _entry(image):
    """The float32 image as 8-bit values (the ops' domain), with its static shape remembered."""
    return _to_pixels(tf.cast(image, tf.float32))


@tf.autograph.experimental.do_not_convert
def auto_augment(image, seed, policy=IMAGENET_POLICY):
    """AutoAugment: one sub-policy of `policy` drawn uniformly, each of its steps applied with its
    probability at its magnitude.

    Built as one switch over the policy's distinct ops per step (their op, probability and
    magnitude looked up by the drawn sub-policy), not one branch per sub-policy: the same
    function, a graph a few times smaller, which tf.data traces once per epoch."""
    shape = image.shape
    image = _entry(image)
    names = sorted({name for sub_policy in policy for name, _, _ in sub_policy})
    steps = max(len(sub_policy) for sub_policy in policy)
    padded = [list(sub_policy) + [(None, 0.0, 0.0)] * (steps - len(sub_policy)) for sub_policy in policy]
    op_table = tf.constant([[names.index(name) if name else 0 for name, _, _ in row] for row in padded], tf.int32)
    probability_table = tf.constant([[p for _, p, _ in row] for row in padded], tf.float32)
    magnitude_table = tf.constant([[m for _, _, m in row] for row in padded], tf.float32)
    draws = tf.random.stateless_uniform([1 + 2 * steps], seed)
    choice = _index(draws[0], len(policy))
    for step in range(steps):
        level, sign = magnitude_table[choice, step], _sign(draws[2 + 2 * step])
        branches = [lambda name=name, current=image, level=level, sign=sign: apply_op(name, current, level, sign)
                    for name in names]
        applied = tf.switch_case(op_table[choice, step], branches)
        image = tf.where(draws[1 + 2 * step] < probability_table[choice, step], applied, image)
    image.set_shape(shape)
    return image


@tf.autograph.experimental.do_not_convert
def rand_augment(image, seed, num_layers=2, magnitude=9.0, magnitude_std=0.0, ops=RANDAUGMENT_OPS):
    """RandAugment: `num_layers` ops drawn uniformly with replacement from `ops`, each applied
    with probability 0.5 at `magnitude` (0..10; with Gaussian noise of `magnitude_std`)."""
    shape = image.shape
    image = _entry(image)
    uniform_seed, normal_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    draws = tf.random.stateless_uniform([num_layers, 3], uniform_seed)
    levels = tf.fill([num_layers], float(magnitude))
    if magnitude_std > 0:
        levels += magnitude_std * tf.random.stateless_normal([num_layers], normal_seed)
    levels = tf.clip_by_value(levels, 0.0, LEVEL_DENOM)

    def layer(index, current):  # one op; a loop, so that the graph holds each op once whatever N is
        level, sign, draw = levels[index], _sign(draws[index, 2]), draws[index]
        branches = [lambda name=name: apply_op(name, current, level, sign) for name in ops]
        applied = tf.switch_case(_index(draw[0], len(ops)), branches)
        return index + 1, tf.where(draw[1] < RANDAUGMENT_APPLY_PROBABILITY, applied, current)

    _, image = tf.while_loop(lambda index, _: index < num_layers, layer, [tf.constant(0), image])
    image.set_shape(shape)
    return image
