"""Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) on a training batch, producing soft
labels with label smoothing.

As timm's `Mixup` (`timm/data/mixup.py`) and the TF Model Garden's `MixupAndCutmix`
(`official/vision/ops/augment.py`) do it: each image i is mixed with its partner in the reversed
batch (B - 1 - i), with its own lambda ~ Beta(alpha, alpha); per batch, mixing happens with
`probability`, and when both are enabled CutMix is chosen with `switch_probability`, else Mixup.
The labels are the label-smoothed one-hot vectors (1 - s + s / C for the class, s / C for the
others), mixed with the same lambda:

    mixup:   x = lam x_i + (1 - lam) x_j,   y = lam y_i + (1 - lam) y_j
    cutmix:  x = x_i with a box of x_j pasted in,   y = lam y_i + (1 - lam) y_j,
             lam = 1 - (box area) / (image area)

The CutMix box has sides sqrt(1 - lam) of the image's, a uniformly drawn centre, and is clipped
to the image; lambda is then recomputed from the clipped box's pixels (timm's `correct_lam`), so
the label weights are exactly the pixel fractions. Batches that are not mixed still get the
smoothed one-hot labels, so every batch of a run has labels of shape (B, C), float32, rows
summing to 1.

Randomness is stateless: the batch's draws come from the mixing seeds of its examples (one
shape-[2] seed per example, made by the pipeline from the example's seed), so a batch is a
function of the pipeline's seed alone.
"""

import tensorflow as tf

from mobilenets.errors import ConfigError


def smooth_one_hot(labels, num_classes, label_smoothing=0.0):
    """(B,) integer labels -> (B, C) float32 one-hot with label smoothing (rows sum to 1)."""
    off = label_smoothing / num_classes
    return tf.one_hot(tf.reshape(tf.cast(labels, tf.int32), [-1]), num_classes, on_value=1.0 - label_smoothing + off,
                      off_value=off)


def sample_beta(shape, alpha, seed):
    """Beta(alpha, alpha) samples, from two stateless Gamma(alpha) draws."""
    first, second = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    a = tf.random.stateless_gamma(shape, first, alpha)
    b = tf.random.stateless_gamma(shape, second, alpha)
    return a / tf.maximum(a + b, 1e-12)


def cutmix_boxes(height, width, lam, seed):
    """Per-example boxes (top, bottom, left, right), clipped to the image: sides sqrt(1 - lam) of
    the image's, centres uniform over the image (timm's rand_bbox)."""
    ratio = tf.sqrt(1.0 - lam)
    cut_h = tf.cast(tf.cast(height, tf.float32) * ratio, tf.int32)
    cut_w = tf.cast(tf.cast(width, tf.float32) * ratio, tf.int32)
    centres = tf.random.stateless_uniform(tf.concat([tf.shape(lam), [2]], 0), seed)
    cy = tf.minimum(tf.cast(centres[:, 0] * tf.cast(height, tf.float32), tf.int32), height - 1)
    cx = tf.minimum(tf.cast(centres[:, 1] * tf.cast(width, tf.float32), tf.int32), width - 1)
    top, bottom = tf.clip_by_value(cy - cut_h // 2, 0, height), tf.clip_by_value(cy + cut_h // 2, 0, height)
    left, right = tf.clip_by_value(cx - cut_w // 2, 0, width), tf.clip_by_value(cx + cut_w // 2, 0, width)
    return top, bottom, left, right


class MixupCutmix:
    """Callable (images (B, H, W, 3), labels (B,), seeds (B, 2)) -> (images, soft labels (B, C)).

    mixup_alpha / cutmix_alpha: Beta parameters; 0 disables that one (at least one must be > 0).
    probability: chance that a batch is mixed at all. switch_probability: chance of CutMix rather
    than Mixup when both are enabled. label_smoothing: applied to the one-hot labels before mixing.
    """

    def __init__(self, num_classes, mixup_alpha=0.0, cutmix_alpha=0.0, probability=1.0, switch_probability=0.5,
                 label_smoothing=0.0):
        if not (mixup_alpha > 0 or cutmix_alpha > 0):
            raise ConfigError("mixing needs mixup_alpha > 0 or cutmix_alpha > 0")
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ConfigError(f"mixup_alpha and cutmix_alpha must be >= 0; got {mixup_alpha}, {cutmix_alpha}")
        if not (0 <= probability <= 1 and 0 <= switch_probability <= 1 and 0 <= label_smoothing < 1):
            raise ConfigError(f"mixing probabilities must be in [0, 1] and label_smoothing in [0, 1); got "
                              f"{probability}, {switch_probability}, {label_smoothing}")
        self.num_classes = int(num_classes)
        self.mixup_alpha, self.cutmix_alpha = float(mixup_alpha), float(cutmix_alpha)
        self.probability, self.label_smoothing = float(probability), float(label_smoothing)
        if not self.cutmix_alpha:
            self.switch_probability = 0.0
        elif not self.mixup_alpha:
            self.switch_probability = 1.0
        else:
            self.switch_probability = float(switch_probability)

    def __call__(self, images, labels, seeds):
        images = tf.cast(images, tf.float32)
        targets = smooth_one_hot(labels, self.num_classes, self.label_smoothing)
        batch_seed = tf.random.experimental.stateless_fold_in(seeds[0], 0)
        choice_seed, mixup_seed, cutmix_seed, box_seed = tf.unstack(
            tf.random.experimental.stateless_split(batch_seed, 4))
        choice = tf.random.stateless_uniform([2], choice_seed)
        mix, use_cutmix = choice[0] < self.probability, choice[1] < self.switch_probability
        batch = tf.shape(images)[0:1]
        partner_images, partner_targets = tf.reverse(images, [0]), tf.reverse(targets, [0])

        out_images, lam = images, tf.ones(batch)
        if self.mixup_alpha:
            mix_lam = sample_beta(batch, self.mixup_alpha, mixup_seed)
            mixed = mix_lam[:, None, None, None] * images + (1.0 - mix_lam[:, None, None, None]) * partner_images
            take = mix & tf.logical_not(use_cutmix)
            out_images, lam = tf.where(take, mixed, out_images), tf.where(take, mix_lam, lam)
        if self.cutmix_alpha:
            height, width = tf.shape(images)[1], tf.shape(images)[2]
            top, bottom, left, right = cutmix_boxes(height, width, sample_beta(batch, self.cutmix_alpha, cutmix_seed),
                                                    box_seed)
            rows, cols = tf.range(height)[None, :], tf.range(width)[None, :]
            inside = (((rows >= top[:, None]) & (rows < bottom[:, None]))[:, :, None]
                      & ((cols >= left[:, None]) & (cols < right[:, None]))[:, None, :])
            pasted = tf.where(inside[..., None], partner_images, images)
            box_lam = 1.0 - tf.cast((bottom - top) * (right - left), tf.float32) / tf.cast(height * width, tf.float32)
            take = mix & use_cutmix
            out_images, lam = tf.where(take, pasted, out_images), tf.where(take, box_lam, lam)
        out_images = tf.clip_by_value(out_images, 0.0, 255.0)
        out_images.set_shape(images.shape)
        soft = lam[:, None] * targets + (1.0 - lam[:, None]) * partner_targets
        return out_images, soft
