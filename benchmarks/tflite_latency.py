"""LiteRT latency of our exported models against keras.applications exported the same way, in one run.

    python benchmarks/tflite_latency.py                          # V2 1.0 224: ours vs keras.applications, float32 + int8
    python benchmarks/tflite_latency.py --models mobilenetv2 keras:mobilenetv2 mobilenetv2_lgc igcv3 --threads 4

Every model goes through `mobilenets.deploy.export.export` (same converter, same
checks; int8 calibrated on synthetic images), then all interpreters take
turns invoke by invoke (`median_latencies_ms`), so load changes on a shared
machine hit every model alike; the table gives the median of --runs invokes
after --warmup. keras.applications V1/V2 expect [-1, 1] inputs and get a
Rescaling(1/127.5, offset=-1) in front, as our Normalize layer does; V3
rescales itself. Learned-group-conv models are condensed (random masks)
and converted to standard group convs (`mobilenets.deploy.convert`) first.

ratio: latency / the keras.applications twin's in the same mode (its own twin
when one was timed, else the first 'keras:' model); speed-up: the float32
latency of the same model / this one.

Measured on this 2-core Sapphire Rapids VM, 1 thread, default models, --runs 400
(our model gets its keras.applications twin's weights, as random weights of
different initializers alone moved the float32 ratio by 2%):

    model                        mode    MAdds   size MB  latency ms  ratio  speed-up
    mobilenetv2                  none    300.8M   13.28      9.569    0.993   1.00x
    mobilenetv2                  int8    300.8M    3.76      6.219    0.999   1.54x
    keras:mobilenetv2            none    300.8M   13.28      9.639    1.000   1.00x
    keras:mobilenetv2            int8    300.8M    3.76      6.226    1.000   1.55x

Both convert to the same ops (CONV_2D+RELU6 x18, DEPTHWISE_CONV_2D+RELU6 x17,
CONV_2D x17, ADD x11, MUL, MEAN, FULLY_CONNECTED): our Normalize layer uses
scalar constants when the channels share them, as keras' Rescaling does (a
per-channel vector broadcast over NHWC costs XNNPACK about 1 ms more).
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--models", nargs="+", default=["mobilenetv2", "keras:mobilenetv2"],
        help="registered names; keras:NAME for the keras.applications twin",
    )
    parser.add_argument("--modes", nargs="+", default=["none", "int8"])
    parser.add_argument("--width-multiplier", type=float, default=1.0)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=100, help="timed invokes per model (median)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--calibration-images", type=int, default=100)
    return parser.parse_args(argv)


def build(spec, width, size):
    """(label, keras model) for a registered name or keras:NAME."""
    import tf_keras as keras

    from mobilenets import build_model
    from mobilenets.registry import is_learned_group_model

    shape = (size, size, 3)
    if spec.startswith("keras:"):
        from mobilenets.pretrained import keras_application

        name = spec.split(":", 1)[1]
        reference = keras_application(name, width, shape)
        if name.startswith("mobilenetv3"):
            return spec, reference
        image = keras.Input(shape, name="image")
        return spec, keras.Model(image, reference(keras.layers.Rescaling(1 / 127.5, offset=-1)(image)), name=name)
    model = build_model(spec, width_multiplier=width, input_shape=shape)
    if is_learned_group_model(spec):
        from mobilenets.deploy.convert import convert_learned_group_model

        return f"{spec} (converted)", convert_learned_group_model(model, condense_remaining=True)
    return spec, model


def _counts(counts):
    return ", ".join(f"{name} x{count}" for name, count in counts.items())


def main(argv=None):
    args = parse_args(argv)
    from mobilenets.evaluation import TFLitePredictor
    from mobilenets.deploy.export import export
    from mobilenets.flops import count
    from mobilenets.deploy.litert import InvokeTimer, median_latencies_ms
    from mobilenets.pretrained import transfer_weights

    models = {spec: build(spec, args.width_multiplier, args.input_size) for spec in args.models}
    for spec, (_, model) in models.items():
        if f"keras:{spec}" in models:  # the twin's weights: the pair then differs only in how its graph is built
            transfer_weights(models[f"keras:{spec}"][1], model)
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for spec in args.models:
            label, model = models[spec]
            madds = count(model).madds
            for mode in args.modes:
                path = os.path.join(directory, f"{spec.replace(':', '_')}_{mode}.tflite")
                report = export(
                    model, path, quantize=mode, representative_data="synthetic", calibration_images=args.calibration_images,
                    parity_images=8, threads=args.threads, latency_runs=1,
                )
                row = {"spec": spec, "model": label, "mode": mode, "madds": madds, "size": report.size_bytes}
                rows.append({**row, "path": path, "undelegated": report.undelegated})
                print(f"exported {label} {mode}: ops {report.ops}, not in XNNPACK {report.undelegated}", flush=True)
        timers = [InvokeTimer(TFLitePredictor(row["path"], args.threads)) for row in rows]
        for row, latency in zip(rows, median_latencies_ms(timers, args.runs, args.warmup)):
            row["latency"] = latency

    fallback = next((spec for spec in args.models if spec.startswith("keras:")), None)
    by_key = {(row["spec"], row["mode"]): row["latency"] for row in rows}
    print(f"\n{args.input_size}x{args.input_size}, width {args.width_multiplier}, {args.threads} thread(s), "
          f"median of {args.runs} invokes after {args.warmup} warm-up, LiteRT + XNNPACK")
    print(f"{'model':<28} {'mode':<8} {'MAdds':>8} {'size MB':>8} {'latency ms':>11} {'ratio':>7} {'speed-up':>9}"
          "  ops left to TFLite kernels")
    for row in rows:
        twin = "keras:" + row["spec"].split(":")[-1]
        reference = twin if (twin, row["mode"]) in by_key else fallback
        ratio = row["latency"] / by_key[(reference, row["mode"])] if reference else float("nan")
        float_latency = by_key.get((row["spec"], "none"))
        speedup = float_latency / row["latency"] if float_latency else float("nan")
        print(f"{row['model']:<28} {row['mode']:<8} {row['madds'] / 1e6:>7.1f}M {row['size'] / 2**20:>8.2f} "
              f"{row['latency']:>11.3f} {ratio:>7.3f} {speedup:>8.2f}x  {_counts(row['undelegated']) or '-'}")


if __name__ == "__main__":
    main()
