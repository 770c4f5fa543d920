"""LiteRT latency of every registered model, float32 and int8, against MobileNetV2 in the same process.

    python benchmarks/tflite_latency.py                                   # every model, 224x224, 1 thread
    python benchmarks/tflite_latency.py --models mobilenetv2 mobilenetv2_lgc igcv3 --runs 200
    python benchmarks/tflite_latency.py --models mobilenetv2 keras:mobilenetv2     # ours vs keras.applications

Every model goes through `mobilenets.deploy.export.export`, as export_tflite.py
does: a learned-group-conv model is condensed (random masks) and exported in
its deployed form, each block in the faster of its two gather-free forms for
that precision (`mobilenets.deploy.tuning`). Weights are random, but the
BatchNorm statistics are re-estimated on images first, as training leaves
them (with the initial mean 0 / variance 1, activations grow through the
depth and int8 ranges become unrealistic). Then all interpreters take turns,
invoke by invoke in blocks (`median_latencies_ms`), so load changes on a
shared machine hit every model alike; the table gives medians.

ratio: latency / mobilenetv2's in the same mode (a keras: twin is compared with
its own twin when both are timed); speed-up: this model's float32 latency /
this one. --plot writes latency against multiply-adds as a PNG.
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=None,
                        help="registered names (default: all); keras:NAME for the keras.applications twin")
    parser.add_argument("--modes", nargs="+", default=["none", "int8"])
    parser.add_argument("--width-multiplier", type=float, default=1.0)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=100, help="timed invokes per model (median)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--calibration-images", type=int, default=32)
    parser.add_argument("--plot", default=None, metavar="PNG", help="write latency vs multiply-adds here")
    return parser.parse_args(argv)


def build(spec, width, size, images):
    """(label, keras model) for a registered name or keras:NAME."""
    import tf_keras as keras

    from mobilenets import build_model
    from mobilenets.models.condensation import condense
    from mobilenets.training.precise_bn import recompute_batch_norm_statistics

    shape = (size, size, 3)
    if spec.startswith("keras:"):
        from mobilenets.models.pretrained import keras_application

        name = spec.split(":", 1)[1]
        reference = keras_application(name, width, shape)
        if not name.startswith("mobilenetv3"):
            image = keras.Input(shape, name="image")
            reference = keras.Model(image, reference(keras.layers.Rescaling(1 / 127.5, offset=-1)(image)), name=name)
        recompute_batch_norm_statistics(reference, images)
        return spec, reference
    model = build_model(spec, width_multiplier=width, input_shape=shape)
    while condense(model):  # an LGC model: random masks, as after training
        pass
    recompute_batch_norm_statistics(model, images)
    return spec, model


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(12, 5), sharex=True)
    for axis, mode, title in zip(axes, ("none", "int8"), ("float32", "int8")):
        for row in (row for row in rows if row["mode"] == mode):
            axis.scatter(row["madds"] / 1e6, row["latency"], color="C3" if "lgc" in row["spec"] else "C0")
            axis.annotate(row["spec"].replace("mobilenet", ""), (row["madds"] / 1e6, row["latency"]), fontsize=7,
                          xytext=(3, 3), textcoords="offset points")
        axis.set(title=f"{title}, LiteRT + XNNPACK, 1 thread", xlabel="multiply-adds (M, as deployed)",
                 ylabel="latency (ms)")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def interleaved_latencies_ms(paths, threads=1, runs=100, warmup=10):
    """Median LiteRT invoke time (ms) of each .tflite file, all loaded in this process and taking
    turns invoke by invoke (`median_latencies_ms`), so load changes hit every file alike."""
    from mobilenets.deploy.litert import InvokeTimer, median_latencies_ms
    from mobilenets.deploy.runtime import TFLitePredictor

    return median_latencies_ms([InvokeTimer(TFLitePredictor(path, threads)) for path in paths], runs, warmup)


def deployed_madds(note, model):
    """Multiply-adds of the exported graph: a converted LGC model's deployed count (from `note`, its export
    report's `deployment`), else the Keras model's."""
    from mobilenets.models.costs import count

    note = note or ""
    if "multiply-adds deployed" in note:
        return int(float(note.split("M multiply-adds deployed")[0].rsplit(" ", 1)[-1]) * 1e6)
    return count(model).madds


def _counts(counts):
    return ", ".join(f"{name} x{count}" for name, count in counts.items())


def main(argv=None):
    args = parse_args(argv)
    import numpy as np

    from mobilenets import list_models
    from mobilenets.deploy.export import export
    from mobilenets.deploy.litert import random_images
    from mobilenets.models.pretrained import transfer_weights

    specs = args.models or list_models()
    shape = (args.input_size, args.input_size, 3)
    images = random_images(16, shape, seed=1)
    models = {spec: build(spec, args.width_multiplier, args.input_size, images) for spec in specs}
    for spec, (_, model) in models.items():
        if f"keras:{spec}" in models:  # the twin's weights: the pair then differs only in how its graph is built
            transfer_weights(models[f"keras:{spec}"][1], model)
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        calibration = os.path.join(directory, "calibration.npz")
        np.savez(calibration, x=random_images(args.calibration_images + 8, shape, seed=2).astype(np.uint8),
                 y=np.zeros(args.calibration_images + 8, np.int64))
        for spec in specs:
            label, model = models[spec]
            for mode in args.modes:
                path = os.path.join(directory, f"{spec.replace(':', '_')}_{mode}.tflite")
                report = export(
                    model, path, quantize=mode, representative_data=calibration,
                    calibration_images=args.calibration_images, parity_images=8, threads=args.threads, latency_runs=1,
                )
                deployed = report.deployment or ""
                madds = deployed_madds(deployed, model)
                rows.append({"spec": spec, "model": label, "mode": mode, "madds": madds, "size": report.size_bytes,
                             "path": path, "undelegated": report.undelegated, "deployment": deployed})
                print(f"exported {label} {mode}: {report.size_bytes / 2**20:.2f} MB, not in XNNPACK: "
                      f"{_counts(report.undelegated) or 'none'}{'; ' + deployed if deployed else ''}", flush=True)
        latencies = interleaved_latencies_ms([row["path"] for row in rows], args.threads, args.runs, args.warmup)
        for row, latency in zip(rows, latencies):
            row["latency"] = latency

    by_key = {(row["spec"], row["mode"]): row["latency"] for row in rows}
    print(f"\n{args.input_size}x{args.input_size}, width {args.width_multiplier}, {args.threads} thread(s), "
          f"median of {args.runs} invokes after {args.warmup} warm-up, LiteRT + XNNPACK, interleaved")
    print(f"{'model':<32} {'mode':<5} {'MAdds':>8} {'size MB':>8} {'ms':>8} {'x of V2':>8} {'int8 speed-up':>14}"
          "  left out of XNNPACK")
    for row in rows:
        name = row["spec"].split(":")[-1]
        twin = f"keras:{name}" if row["spec"] == name else name
        reference = twin if (twin, row["mode"]) in by_key else "mobilenetv2"
        base = by_key.get((reference, row["mode"]))
        ratio = row["latency"] / base if base else float("nan")
        float_latency = by_key.get((row["spec"], "none"))
        speedup = float_latency / row["latency"] if float_latency and row["mode"] != "none" else None
        label = row["spec"] + (" (converted)" if row["deployment"] else "")
        print(f"{label:<32} {row['mode']:<5} {row['madds'] / 1e6:>7.1f}M {row['size'] / 2**20:>8.2f} "
              f"{row['latency']:>8.3f} {ratio:>8.3f} {(f'{speedup:.2f}x' if speedup else '-'):>14}  "
              f"{_counts(row['undelegated']) or '-'}")
    if args.plot:
        plot(rows, args.plot)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
