"""Every on-disk dataset format the data module reads, written with random pixels, each writer returning
what it wrote so that a test can read it back and compare exactly (tests/test_data_pipelines.py,
tests/test_augmentations.py). Data shaped as users have it (class-coloured photos, partial copies) is
tests/userdata.py's.

    folder, data = write_cifar10_python(tmp_path)        # cifar-10-batches-py/, data = {split: (x, y)}
    written = write_folder_tree(tmp_path / "tree")       # root/<split>/<class>/img_i.(jpg|png)
"""

import pickle
import tarfile

import numpy as np
import tensorflow as tf

RNG = np.random.default_rng(0)  # one stream for every writer and the tests that draw beside them
CIFAR10_NAMES = {
    "python_dir": "cifar-10-batches-py",
    "train": [f"data_batch_{i}" for i in range(1, 6)],
    "test": ["test_batch"],
}
PER_BATCH = 4  # images per CIFAR train batch file
NUM_TEST = 6


def random_images(n, height=32, width=32):
    return RNG.integers(0, 256, (n, height, width, 3), dtype=np.uint8)


def cifar_split(num_classes, n):
    return random_images(n), RNG.integers(0, num_classes, n)


def planar(images):
    """(N, 32, 32, 3) -> the official (N, 3072) CHW-planar rows."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3072)


def write_pickle(path, images, labels, label_key=b"labels"):
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"x", label_key: [int(v) for v in labels], b"data": planar(images)}, f, protocol=2)


def write_cifar10_python(directory):
    """cifar-10-batches-py/ with 5 train batches and a test batch; returns {split: (x, y)}."""
    folder = directory / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    data = {"train": cifar_split(10, 5 * PER_BATCH), "test": cifar_split(10, NUM_TEST)}
    for split, names in (("train", CIFAR10_NAMES["train"]), ("test", CIFAR10_NAMES["test"])):
        x, y = data[split]
        for i, name in enumerate(names):
            rows = slice(i * PER_BATCH, (i + 1) * PER_BATCH) if split == "train" else slice(None)
            write_pickle(folder / name, x[rows], y[rows])
    return folder, data


def write_cifar_binary(directory, folder_name, files, label_bytes, num_classes):
    """The binary format: records of label byte(s) + 3072 planar bytes."""
    folder = directory / folder_name
    folder.mkdir(parents=True)
    data = {"train": cifar_split(num_classes, len(files["train"]) * PER_BATCH), "test": cifar_split(num_classes, NUM_TEST)}
    for split, names in files.items():
        x, y = data[split]
        for i, name in enumerate(names):
            rows = slice(i * PER_BATCH, (i + 1) * PER_BATCH) if split == "train" else slice(None)
            labels = np.repeat(y[rows, None], label_bytes, axis=1).astype(np.uint8)  # coarse byte = fine byte here
            (folder / name).write_bytes(np.concatenate([labels, planar(x[rows])], axis=1).tobytes())
    return folder, data


def write_cifar10_binary(directory):
    files = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
    return write_cifar_binary(directory, "cifar-10-batches-bin", files, 1, 10)


def write_tar_gz(folder, archive):
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def encode(image, fmt):
    return (tf.io.encode_png(image) if fmt == "png" else tf.io.encode_jpeg(image, quality=90)).numpy()


def write_folder_tree(root, classes=("cat", "dog", "emu"), per_class=2, size=(12, 16), splits=("train", "val")):
    """root/<split>/<class>/img_i.(jpg|png), alternating formats; returns {split: [(path, label)]}."""
    written = {}
    for split in splits:
        written[split] = []
        for label, name in enumerate(sorted(classes)):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                fmt = "png" if i % 2 else "jpg"
                path = root / split / name / f"img_{i}.{fmt}"
                path.write_bytes(encode(random_images(1, *size)[0], fmt))
                written[split].append((str(path), label))
    return written


def tf_example(encoded, label):
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
                "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
            }
        )
    ).SerializeToString()


def write_shards(directory, split, labels, num_shards=2, size=(20, 24)):
    """Model Garden shards `split-0000i-of-0000n` of JPEGs; returns [(jpeg bytes, stored label)] in file order."""
    written = []
    per_shard = -(-len(labels) // num_shards)
    for shard in range(num_shards):
        with tf.io.TFRecordWriter(str(directory / f"{split}-{shard:05d}-of-{num_shards:05d}")) as writer:
            for label in labels[shard * per_shard : (shard + 1) * per_shard]:
                jpeg = encode(random_images(1, *size)[0], "jpg")
                writer.write(tf_example(jpeg, int(label)))
                written.append((jpeg, int(label)))
    return written


def write_npz(path, n=40, size=(8, 10), num_classes=5):
    x, y = random_images(n, *size), RNG.integers(0, num_classes, n)
    np.savez(path, x=x, y=y)
    return x, y
