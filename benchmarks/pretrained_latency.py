"""LiteRT latency of MobileNetV4 built from timm checkpoints (issue 23), float32 and int8, at each checkpoint's size.

    python benchmarks/pretrained_latency.py [--timm-python /tmp/timm-venv/bin/python] [--models NAME ...]

A model built from a timm checkpoint (`build_model(NAME, weights=FILE)`) is laid out as PyTorch trained it:
symmetric padding of strided convs (a PAD op before each), BatchNorm epsilon 1e-5 and the checkpoint's
input size and normalization. Each of the five MobileNetV4s is built from a full-size checkpoint of random
weights and random BatchNorm statistics that timm writes (`timm_reference.write_checkpoints`, run in a scratch
virtualenv with timm and torch), and exported float32 and int8 by `mobilenets.deploy.export.export`, as
export_tflite.py does, calibrated on real CIFAR-10 photos resized to the input size
(../shared/data/cifar10_real_5k.npz). Its twin, the same model in our own layout (TF's SAME padding, epsilon
1e-3, [-1, 1] inputs) at the same size with the same weights, is exported alike. All files are then timed
interleaved in this one process (`tflite_latency.interleaved_latencies_ms`, 1 thread), so that load changes
hit every file alike; "x of ours" is the latency over the twin's.

int8 agreement: top-1 of the int8 file against the float Keras model (which the float32 file matches
to 1e-5) on --parity-images photos the calibration did not use.
"""

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from benchmarks.timm_reference import DATA, FULL, write_checkpoints  # noqa: E402
from benchmarks.tflite_latency import interleaved_latencies_ms  # noqa: E402

V4_MODELS = ("mobilenetv4_conv_small", "mobilenetv4_conv_medium", "mobilenetv4_conv_large",
             "mobilenetv4_hybrid_medium", "mobilenetv4_hybrid_large")


def photos(count, size, seed=0):
    """`count` CIFAR-10 photos resized (bilinear) to size x size, uint8 NHWC."""
    import tensorflow as tf

    with np.load(DATA) as data:
        picks = np.random.default_rng(seed).choice(len(data["x"]), count, replace=False)
        small = data["x"][picks]
    return np.clip(np.round(tf.image.resize(small.astype(np.float32), (size, size)).numpy()), 0, 255).astype(np.uint8)


def models_of(name, checkpoint):
    """(timm-layout model, its twin in our layout with the same weights)."""
    from mobilenets.models.pretrained import transfer_weights
    from mobilenets.models.registry import build_model

    pretrained = build_model(name, weights=checkpoint)
    ours = build_model(name, input_shape=pretrained.input_shape[1:])
    transfer_weights(pretrained, ours)
    return pretrained, ours


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timm-python", default="/tmp/timm-venv/bin/python")
    parser.add_argument("--models", nargs="+", choices=V4_MODELS, default=list(V4_MODELS))
    parser.add_argument("--calibration-images", type=int, default=32)
    parser.add_argument("--parity-images", type=int, default=64)
    parser.add_argument("--runs", type=int, default=100, help="timed invokes per file (median)")
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args(argv)

    from mobilenets.deploy.export import export

    rows = []
    with tempfile.TemporaryDirectory(prefix="pretrained_latency_") as scratch:
        write_checkpoints(args.timm_python, scratch, args.models, FULL)
        for name in args.models:
            pretrained, ours = models_of(name, os.path.join(scratch, name, "model.safetensors"))
            size = pretrained.input_shape[1]
            images = os.path.join(scratch, name, "photos.npz")
            count = args.calibration_images + args.parity_images
            np.savez(images, x=photos(count, size), y=np.zeros(count, np.int64))
            for layout, model in (("timm", pretrained), ("ours", ours)):
                for mode in ("none", "int8"):
                    path = os.path.join(scratch, f"{name}_{layout}_{mode}.tflite")
                    report = export(model, path, quantize=mode, representative_data=images,
                                    calibration_images=args.calibration_images, parity_images=args.parity_images,
                                    latency_runs=1)
                    rows.append({"model": name, "size": size, "layout": layout, "mode": mode, "path": path,
                                 "mb": report.size_bytes / 2**20, "agreement": report.parity.top1_agreement,
                                 "undelegated": sum(report.undelegated.values())})
                    print(f"exported {name} {layout} {mode} at {size}: {rows[-1]['mb']:.2f} MB, top-1 agreement "
                          f"{report.parity.top1_agreement:.3f}, ops outside XNNPACK: {rows[-1]['undelegated']}",
                          flush=True)
        latencies = interleaved_latencies_ms([row["path"] for row in rows], 1, args.runs, args.warmup)
    for row, latency in zip(rows, latencies):
        row["ms"] = latency
    by_key = {(row["model"], row["layout"], row["mode"]): row for row in rows}
    print(f"\ntimm-layout files (random weights), LiteRT + XNNPACK, 1 thread, median of {args.runs} invokes, "
          "interleaved; x of ours: over the same model in our layout at the same size")
    print("| model | input | float32 ms | x of ours | int8 ms | x of ours | int8 speed-up | int8 top-1 agreement |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models:
        timm_float, timm_int8 = by_key[(name, "timm", "none")], by_key[(name, "timm", "int8")]
        ours_float, ours_int8 = by_key[(name, "ours", "none")], by_key[(name, "ours", "int8")]
        print(f"| {name} | {timm_float['size']} | {timm_float['ms']:.2f} | {timm_float['ms'] / ours_float['ms']:.3f} "
              f"| {timm_int8['ms']:.2f} | {timm_int8['ms'] / ours_int8['ms']:.3f} | "
              f"{timm_float['ms'] / timm_int8['ms']:.2f}x | {timm_int8['agreement']:.1%} "
              f"(ours {ours_int8['agreement']:.1%}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
