"""Images per second of each input pipeline, against the training step it feeds.

    python benchmarks/data_throughput.py [--seconds 5] [--train-steps 3] [--json out.json]

Writes small datasets in the real on-disk formats to a temporary directory
(CIFAR-10 python batches at the official size, a folder tree of JPEGs, the
same JPEGs as TFRecord shards), times `make_dataset` on each in training mode
(plus CIFAR in evaluation mode, and ../shared/data/cifar10_real_5k.npz when
present), then times training steps of MobileNetV2-CIFAR at batch 128 in the
same process. Acceptance: the CIFAR training pipeline delivers at least 5x
the images/s that the model trains at.
"""

import argparse
import os
import pickle
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from mobilenets.data import make_dataset  # noqa: E402
from mobilenets.io import write_json  # noqa: E402

BATCH = 128
IMAGENET_BATCH = 64
REQUIRED_RATIO = 5.0
REAL_CIFAR_NPZ = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "cifar10_real_5k.npz")


def write_cifar10_python(root, rng):
    """cifar-10-batches-py/ with the official 5 x 10,000 + 10,000 layout (random pixels)."""
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (10000, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, 10000))}
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(batch, f, protocol=4)
    return folder


def smooth_images(rng, count, height, width):
    """Photo-like (low-frequency) uint8 images, so that JPEG sizes are realistic."""
    coarse = rng.uniform(0, 255, (count, height // 16, width // 16, 3)).astype(np.float32)
    fine = tf.image.resize(coarse, (height, width), method="bicubic") + rng.normal(0, 8, (count, height, width, 3))
    return tf.cast(tf.clip_by_value(fine, 0, 255), tf.uint8).numpy()


def write_jpegs(root, rng, classes=10, per_class=30, size=(300, 400)):
    """root/train/<class>/*.jpg plus the same JPEGs as 4 Model Garden TFRecord shards (1-based labels)."""
    records = []
    for label in range(classes):
        folder = os.path.join(root, "tree", "train", f"class_{label:02d}")
        os.makedirs(folder)
        for i, image in enumerate(smooth_images(rng, per_class, *size)):
            jpeg = tf.io.encode_jpeg(image, quality=90).numpy()
            with open(os.path.join(folder, f"{i:04d}.jpg"), "wb") as f:
                f.write(jpeg)
            records.append((jpeg, label + 1))
    shard_dir = os.path.join(root, "shards")
    os.makedirs(shard_dir)
    for shard in range(4):
        with tf.io.TFRecordWriter(os.path.join(shard_dir, f"train-{shard:05d}-of-00004")) as writer:
            for jpeg, label in records[shard::4]:
                feature = {
                    "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
                    "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                }
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return os.path.join(root, "tree"), shard_dir, sum(len(j) for j, _ in records) / len(records)


def images_per_second(dataset, seconds, warmup_batches=3):
    """Steady-state images/s of a (repeated) batched dataset."""
    iterator = iter(dataset.repeat())
    for _ in range(warmup_batches):
        next(iterator)
    images, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        images += int(next(iterator)[1].shape[0])
    return images / (time.perf_counter() - start)


def mobilenetv2_cifar():
    try:
        from mobilenets import build_model

        return build_model("mobilenetv2", num_classes=10, input_shape=(32, 32, 3), config="cifar"), "mobilenets"
    except ImportError as e:
        print(f"NOTE: mobilenets.build_model unavailable ({e}); timing keras.applications.MobileNetV2 instead")
        return keras.applications.MobileNetV2(input_shape=(32, 32, 3), weights=None, classes=10), "keras.applications"


def training_images_per_second(steps):
    model, origin = mobilenetv2_cifar()
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=origin == "mobilenets"),
    )
    rng = np.random.default_rng(0)
    x = tf.constant(rng.uniform(0, 255, (BATCH, 32, 32, 3)).astype(np.float32))
    y = tf.constant(rng.integers(0, 10, BATCH).astype(np.int32))
    model.train_on_batch(x, y)  # tracing and first-step allocation
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return BATCH * steps / (time.perf_counter() - start), origin


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="timing window per pipeline")
    parser.add_argument("--train-steps", type=int, default=3, help="timed training steps of batch 128")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cifar_dir = write_cifar10_python(tmp, rng)
        tree, shards, jpeg_bytes = write_jpegs(tmp, rng)
        print(f"wrote test data in {time.perf_counter() - t0:.1f} s (JPEGs 300x400, {jpeg_bytes / 1024:.0f} KiB on average)")
        cases = [
            ("cifar10 python batches, train (augment=cifar)", "cifar10", cifar_dir, BATCH, True, 32, {}),
            ("cifar10 python batches, eval", "cifar10", cifar_dir, BATCH, False, 32, {}),
            ("synthetic 32x32, train", "synthetic", None, BATCH, True, 32, {"num_examples": 4096}),
            ("folder of JPEGs, train (inception, 224)", "folder", tree, IMAGENET_BATCH, True, 224, {}),
            ("TFRecord shards, train (inception, 224)", "imagenet2012", shards, IMAGENET_BATCH, True, 224, {}),
        ]
        if os.path.exists(REAL_CIFAR_NPZ):
            cases.insert(2, ("cifar10_real_5k.npz, train (augment=cifar)", "npz", REAL_CIFAR_NPZ, BATCH, True, 32, {}))
        for label, name, data_dir, batch, training, size, options in cases:
            dataset = make_dataset(name, "train", batch, training, data_dir=data_dir, image_size=size, **options)
            rows.append({"pipeline": label, "batch": batch, "images_per_s": images_per_second(dataset, args.seconds)})
            print(f"  {label}: {rows[-1]['images_per_s']:,.0f} images/s", flush=True)

    train_rate, origin = training_images_per_second(args.train_steps)
    print()
    print(f"{'pipeline':<48} {'batch':>5} {'images/s':>10} {'x training':>10}")
    for row in rows:
        row["ratio_to_training"] = row["images_per_s"] / train_rate
        print(f"{row['pipeline']:<48} {row['batch']:>5} {row['images_per_s']:>10,.0f} {row['ratio_to_training']:>9.1f}x")
    print(f"{'MobileNetV2-CIFAR training step (' + origin + ')':<48} {BATCH:>5} {train_rate:>10,.1f}")
    cifar_ratio = rows[0]["ratio_to_training"]
    passed = cifar_ratio >= REQUIRED_RATIO
    print(f"\nCIFAR training pipeline / MobileNetV2-CIFAR training = {cifar_ratio:.1f}x "
          f"(required >= {REQUIRED_RATIO:.0f}x): {'PASS' if passed else 'FAIL'}")
    print(f"({os.cpu_count()} CPU cores; TensorFlow {tf.__version__}; other processes share these cores)")
    if args.json:
        write_json(args.json, {"pipelines": rows, "training_images_per_s": train_rate, "model": origin,
                               "cifar_ratio": cifar_ratio, "passed": passed, "cpu_count": os.cpu_count()})
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
