"""Writes the real-CIFAR-10 slice the benchmarks use, from any official copy of CIFAR-10.

    python benchmarks/cifar10_slice.py --data-dir ~/Downloads/cifar-10-python.tar.gz -o cifar10_real_5k.npz
    python benchmarks/train_cifar_real.py --data cifar10_real_5k.npz

The slice is the first 1,017 images of each of the five official training batches
(5,085 images): `x` uint8 (N, 32, 32, 3) RGB, `y` int64 CIFAR-10 class ids, the layout of
`../shared/data/cifar10_real_5k.npz` that the README's benchmark figures were measured on.
DIR is anything `--dataset cifar10` reads: the python or binary archive, or its extracted folder.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mobilenets.commands import cli  # noqa: E402

BATCH_SIZE = 10_000  # images per official training batch file
PER_BATCH = 1_017


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="a copy of CIFAR-10 (archive or extracted folder)")
    parser.add_argument("--output", "-o", default="cifar10_real_5k.npz")
    parser.add_argument("--per-batch", type=int, default=PER_BATCH, help="images taken from each training batch")
    args = parser.parse_args(argv)
    data = cli.import_quietly("mobilenets.data")

    def write_slice():
        import numpy as np

        from mobilenets.io import atomic_path

        batches = data.make_dataset("cifar10", "train", BATCH_SIZE, training=False, data_dir=args.data_dir)
        xs, ys = [], []
        for images, labels in batches.as_numpy_iterator():  # one official batch file per dataset batch
            xs.append(images[: args.per_batch].astype(np.uint8))
            ys.append(labels[: args.per_batch].astype(np.int64))
        x, y = np.concatenate(xs), np.concatenate(ys)
        with atomic_path(args.output, suffix=".npz") as tmp:
            np.savez(tmp, x=x, y=y)
        print(f"wrote {args.output}: {len(x)} images, {len(xs)} batches, classes {np.bincount(y).tolist()}")

    return cli.run(write_slice)


if __name__ == "__main__":
    sys.exit(main())
