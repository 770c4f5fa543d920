"""The extra training augmentations of issue 15: AutoAugment, RandAugment, random erasing (per
image), Mixup and CutMix (per batch, soft labels with label smoothing).

Each is a function of its seed (same seed, same output; another seed, another output), keeps
images float32 in [0, 255] with their shape; mixed labels sum to 1 and CutMix's label weight is the
pasted box's pixel fraction; the ops match PIL's; every dataset source runs them; and a tiny run
with all of them on trains through the trainer. Small images, so the file runs in well under 90 s.
"""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageEnhance, ImageOps

from hparams import apply_overrides, get_preset
from mobilenets.data import autoaugment, make_dataset
from mobilenets.data.augment import image_stages, random_erasing
from mobilenets.data.mixing import MixupCutmix, smooth_one_hot
from mobilenets.errors import ConfigError
from mobilenets.training import train
from mobilenets.training.inputs import plan_data, training_dataset, validation_dataset
from mobilenets.training.objective import SparseCrossEntropy, Top1Accuracy
from dataformats import write_cifar10_python, write_folder_tree, write_npz, write_shards

RNG = np.random.default_rng(15)
SIZE = (20, 18)


def smooth_image(height=SIZE[0], width=SIZE[1]):
    """Gradients plus noise: every op changes it visibly."""
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 255 // width, yy * 255 // height, (xx + yy) * 127 // (height + width)], -1)
    return np.clip(base + RNG.integers(-20, 21, base.shape), 0, 255).astype(np.float32)


def seed(a, b=1):
    return tf.constant([a, b], tf.int64)


STAGES = {
    "autoaugment": image_stages("autoaugment")[0],
    "randaugment": image_stages("randaugment", randaugment_layers=2, randaugment_magnitude=9)[0],
    "randaugment_mstd": image_stages("randaugment", randaugment_layers=3, randaugment_magnitude=7,
                                     randaugment_magnitude_std=1.0)[0],
    "random_erasing": image_stages(random_erasing_probability=1.0)[0],
}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_each_image_stage_is_a_function_of_its_seed_and_keeps_shape_and_range(name):
    stage = tf.function(STAGES[name])
    image = tf.constant(smooth_image())
    outputs = [stage(image, seed(s)).numpy() for s in range(12)]
    for out in outputs:
        assert out.shape == (*SIZE, 3) and out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 255.0
    np.testing.assert_array_equal(stage(image, seed(3)).numpy(), outputs[3])
    distinct = {out.tobytes() for out in outputs}
    assert len(distinct) >= 4, name  # different seeds, different images (some draws may apply nothing)
    assert any(not np.array_equal(out, image.numpy()) for out in outputs)


def test_every_op_keeps_range_and_pixel_values_at_every_magnitude():
    image = tf.constant(smooth_image())
    for name in autoaugment.OPS:
        for level in (0.0, 4.0, 10.0):
            for sign in (-1.0, 1.0):
                out = autoaugment.apply_op(name, image, level, sign).numpy()
                assert out.shape == image.shape and 0 <= out.min() and out.max() <= 255, name
                np.testing.assert_array_equal(out, np.round(out), err_msg=name)  # 8-bit values, as PIL's


def test_ops_match_pil():
    """The colour ops equal PIL's (to one grey level: PIL rounds its blends differently), the
    translation exactly; rotation and shear agree inside the image (edges interpolate with the fill)."""
    array = smooth_image().astype(np.uint8)
    pil, image = Image.fromarray(array), tf.constant(array.astype(np.float32))
    affine = dict(resample=Image.BILINEAR, fillcolor=(128, 128, 128))
    cases = [
        (autoaugment.equalize(image), ImageOps.equalize(pil), 0),
        (autoaugment.auto_contrast(image), ImageOps.autocontrast(pil), 1),
        (autoaugment.posterize(image, 3), ImageOps.posterize(pil, 3), 0),
        (autoaugment.solarize(image, 100), ImageOps.solarize(pil, 100), 0),
        (autoaugment.invert(image), ImageOps.invert(pil), 0),
        (autoaugment.color(image, 0.3), ImageEnhance.Color(pil).enhance(0.3), 1),
        (autoaugment.contrast(image, 1.6), ImageEnhance.Contrast(pil).enhance(1.6), 1),
        (autoaugment.brightness(image, 0.5), ImageEnhance.Brightness(pil).enhance(0.5), 1),
        (autoaugment.sharpness(image, 1.8), ImageEnhance.Sharpness(pil).enhance(1.8), 1),
        (autoaugment.translate_x(image, 4 / SIZE[1]),
         pil.transform(pil.size, Image.AFFINE, (1, 0, 4, 0, 1, 0), **affine), 0),
    ]
    for ours, reference, tolerance in cases:
        assert np.abs(ours.numpy() - np.asarray(reference, np.float32)).max() <= tolerance
    inner = (slice(4, -4), slice(4, -4))
    for ours, reference in [
        (autoaugment.shear_x(image, 0.2), pil.transform(pil.size, Image.AFFINE, (1, 0.2, 0, 0, 1, 0), **affine)),
        (autoaugment.rotate(image, 15.0), pil.rotate(15, **affine)),
    ]:
        assert np.abs(ours.numpy()[inner] - np.asarray(reference, np.float32)[inner]).max() <= 2


def test_random_erasing_fills_one_rectangle_within_the_area_range():
    image = np.full((*SIZE, 3), 7.0, np.float32)  # the random fill differs from 7 almost surely
    for s in range(10):
        out = random_erasing(tf.constant(image), seed(s), 1.0, (0.1, 0.3)).numpy()
        changed = (out != image).any(-1)
        rows, cols = np.flatnonzero(changed.any(1)), np.flatnonzero(changed.any(0))
        box = changed[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        assert box.all()  # one solid rectangle
        assert 0.1 * 0.8 <= box.size / changed.size <= 0.3 * 1.2  # its area (sides rounded to pixels)
    never = random_erasing(tf.constant(image), seed(1), 0.0)
    np.testing.assert_array_equal(never.numpy(), image)


def batch(count=6, classes=5):
    images = tf.constant(RNG.uniform(0, 255, (count, *SIZE, 3)), tf.float32)
    labels = tf.constant(np.arange(count) % classes, tf.int32)
    seeds = tf.constant(RNG.integers(0, 2**31, (count, 2)), tf.int64)
    return images, labels, seeds


def test_mixup_mixes_images_and_smoothed_labels_with_the_same_weight():
    images, labels, seeds = batch()
    smoothing, classes = 0.1, 5
    mix = MixupCutmix(classes, mixup_alpha=0.4, label_smoothing=smoothing)
    mixed, soft = (t.numpy() for t in mix(images, labels, seeds))
    np.testing.assert_allclose(soft.sum(1), 1.0, atol=1e-6)
    assert soft.min() >= smoothing / classes - 1e-6
    one_hot = smooth_one_hot(labels, classes, smoothing).numpy()
    x, partner_x, y, partner_y = images.numpy(), images.numpy()[::-1], one_hot, one_hot[::-1]
    for i in range(len(x)):
        if labels[i] == labels[len(x) - 1 - i]:
            continue
        lam = (soft[i] - partner_y[i])[labels[i]] / (y[i] - partner_y[i])[labels[i]]
        np.testing.assert_allclose(soft[i], lam * y[i] + (1 - lam) * partner_y[i], atol=1e-6)
        np.testing.assert_allclose(mixed[i], lam * x[i] + (1 - lam) * partner_x[i], atol=1e-3)
    assert not np.allclose(mixed, images.numpy())


def test_cutmix_label_weight_is_the_pasted_pixel_fraction():
    count, classes = 8, 8
    values = np.arange(count, dtype=np.float32)[:, None, None, None] * 30
    images = tf.constant(np.broadcast_to(values, (count, *SIZE, 3)))
    labels = tf.range(count)
    mix = MixupCutmix(classes, cutmix_alpha=1.0, label_smoothing=0.2)
    pasted_any = False
    for s in range(4):
        seeds = tf.constant(RNG.integers(0, 2**31, (count, 2)), tf.int64)
        out, soft = (t.numpy() for t in mix(images, labels, seeds))
        np.testing.assert_allclose(soft.sum(1), 1.0, atol=1e-6)
        on, off = 1 - 0.2 + 0.2 / classes, 0.2 / classes
        for i in range(count):
            partner = count - 1 - i
            pasted = (out[i, ..., 0] == partner * 30).mean()  # pixels that came from the partner
            assert ((out[i, ..., 0] == i * 30) | (out[i, ..., 0] == partner * 30)).all()
            if partner != i:
                partner_weight = (soft[i, partner] - off) / (on - off)
                assert partner_weight == pytest.approx(pasted, abs=1e-6)
                pasted_any |= pasted > 0
    assert pasted_any


def test_mixing_is_a_function_of_the_seeds_and_switches_between_mixup_and_cutmix():
    images, labels, seeds = batch()
    mix = MixupCutmix(5, mixup_alpha=0.8, cutmix_alpha=1.0, switch_probability=0.5, label_smoothing=0.1)
    first, again = mix(images, labels, seeds), mix(images, labels, seeds)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    kinds = set()
    for s in range(12):
        out = mix(images, labels, seeds + s)[0].numpy()
        assert out.shape == images.shape and 0 <= out.min() and out.max() <= 255
        # CutMix keeps each pixel of one of the two images; Mixup blends them.
        from_either = np.isclose(out, images.numpy()) | np.isclose(out, images.numpy()[::-1])
        kinds.add("cutmix" if from_either.all() else "mixup")
    assert kinds == {"cutmix", "mixup"}
    unmixed = MixupCutmix(5, mixup_alpha=1.0, probability=0.0, label_smoothing=0.1)(images, labels, seeds)
    np.testing.assert_array_equal(unmixed[0].numpy(), images.numpy())
    np.testing.assert_allclose(unmixed[1].numpy(), smooth_one_hot(labels, 5, 0.1).numpy())


def test_soft_labels_in_loss_and_accuracy():
    logits = tf.constant([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
    soft = tf.constant([[0.7, 0.3, 0.0], [0.0, 0.4, 0.6]])
    expected = -np.sum(soft.numpy() * tf.nn.log_softmax(logits).numpy(), axis=1)
    loss = SparseCrossEntropy(3, label_smoothing=0.1)  # smoothing applies to integer labels only
    np.testing.assert_allclose(loss.call(soft, logits).numpy(), expected, rtol=1e-6)
    smoothed = loss.call(tf.constant([[0], [2]]), logits).numpy()
    np.testing.assert_allclose(smoothed, loss.call(smooth_one_hot([0, 2], 3, 0.1), logits).numpy(), rtol=1e-6)
    accuracy = Top1Accuracy()
    accuracy.update_state(tf.constant([[0.3, 0.7, 0.0], [0.0, 0.4, 0.6]]), logits)  # argmax 1 (wrong), 2 (right)
    accuracy.update_state(tf.constant([[0], [1]]), logits)  # integer labels: right, wrong
    assert float(accuracy.result()) == 0.5


def test_every_source_runs_every_augmentation_deterministically(tmp_path):
    write_folder_tree(tmp_path / "tree", per_class=4, splits=("train",))
    write_shards(tmp_path, "train", RNG.integers(1, 1001, 12))
    write_npz(tmp_path / "a.npz")
    sources = [("cifar10", write_cifar10_python(tmp_path / "cifar")[0], 10), ("folder", tmp_path / "tree", 3),
               ("imagenet2012", tmp_path, 1000), ("npz", tmp_path / "a.npz", 5), ("synthetic", None, 10)]
    augment = dict(augment="inception", stages=image_stages("autoaugment", random_erasing_probability=0.5))
    for name, data_dir, classes in sources:
        mix = MixupCutmix(classes, mixup_alpha=0.2, cutmix_alpha=1.0, label_smoothing=0.1)

        def first_batches(seed_value, epochs):  # the same dataset iterated again draws anew
            dataset = make_dataset(name, "train", 4, training=True, data_dir=data_dir, image_size=(16, 16),
                                   seed=seed_value, mix=mix, **augment)
            return [[t.numpy() for t in next(iter(dataset))] for _ in range(epochs)]

        ((x, y), other), (again,) = first_batches(3, 2), first_batches(3, 1)
        assert x.shape == (4, 16, 16, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 255, name
        assert y.shape == (4, classes) and y.dtype == np.float32, name
        np.testing.assert_allclose(y.sum(1), 1.0, atol=1e-5, err_msg=name)
        np.testing.assert_array_equal(x, again[0], err_msg=name)
        np.testing.assert_array_equal(y, again[1], err_msg=name)
        assert not np.array_equal(x, other[0]), name


def test_stages_and_mixing_leave_runs_without_them_unchanged():
    """With no extra stage the pipeline gives the batches it gave before they existed."""
    plain = make_dataset("synthetic", "train", 4, training=True, augment="cifar", seed=5, num_examples=8)
    staged = make_dataset("synthetic", "train", 4, training=True, augment="cifar", seed=5, num_examples=8,
                          stages=image_stages("none"), mix=None)
    for (a, la), (b, lb) in zip(plain, staged):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        np.testing.assert_array_equal(la.numpy(), lb.numpy())


def test_config_values_are_checked_with_one_line():
    base = get_preset("smoke")
    for override, message in [
        ("data.auto_augment=autoaugmentt", "data.auto_augment must be one of"),
        ("data.randaugment_magnitude=11", "data.randaugment_magnitude must be in [0, 10]"),
        ("data.randaugment_layers=0", "data.randaugment_layers must be in [1, 10]"),
        ("data.random_erasing=1.5", "data.random_erasing must be a probability"),
        ("data.random_erasing_min_area=0.5", "data.random_erasing_min_area must be in (0, "),
        ("data.mixup_alpha=-1", "data.mixup_alpha must be >= 0"),
        ("data.mix_switch_probability=2", "data.mix_switch_probability must be a probability"),
    ]:
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")) as error:
            apply_overrides(base, [override])
        assert "\n" not in str(error.value)


def test_a_tiny_run_with_every_augmentation_trains_through_the_trainer(tmp_path):
    config = apply_overrides(get_preset("smoke"), [
        f"run.run_dir={tmp_path / 'run'}", "model.width_multiplier=0.35", "model.config=imagenet",
        "data.synthetic_examples=16", "schedule.batch_size=8", "run.steps_per_epoch=2", "schedule.epochs=1",
        "data.augmentation=cifar", "data.auto_augment=randaugment", "data.randaugment_magnitude_std=0.5",
        "data.random_erasing=0.5", "data.mixup_alpha=0.2", "data.cutmix_alpha=1.0",
        "regularization.label_smoothing=0.1",
    ])
    plan = plan_data(config)
    images, labels = next(iter(training_dataset(config, plan, epoch=0)))
    assert labels.shape == (8, 10) and labels.dtype == tf.float32
    np.testing.assert_allclose(labels.numpy().sum(1), 1.0, atol=1e-5)
    _, val_labels = next(iter(validation_dataset(config, plan)))
    assert val_labels.dtype == tf.int32 and val_labels.shape.rank == 1  # validation: integer labels
    result = train(config, verbose=0, log=lambda *_: None)
    logs = result.history[-1]
    assert result.epochs_done == 1 and np.isfinite(logs["loss"]) and np.isfinite(logs["val_loss"])
    assert 0.0 <= logs["accuracy"] <= 1.0 and 0.0 <= logs["val_accuracy"] <= 1.0
