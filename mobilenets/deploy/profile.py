"""Where the time of a `.tflite` goes: a per-op latency profile under LiteRT + XNNPACK.

    mobilenets-profile model.tflite [--threads 1] [--runs 50] [--top 20] [--by-kind]   (commands/profile.py)

The Python interpreter has no per-op timer, so each op is cut out of the
file into a model of its own (its weights, its quantization, random inputs
of the right type and shape) and timed there with the same delegate. XNNPACK
runs ops one after another, so the ops' times add up to about the whole
model's; the profile prints both, and marks every op that XNNPACK does not
take (it runs in TFLite's own kernel and splits the delegated graph: the
partitions are counted too).
"""

import copy
import dataclasses

import numpy as np


@dataclasses.dataclass
class OpTime:
    index: int
    op: str  # builtin name with its fused activation, e.g. 'CONV_2D+RELU6'
    shape: str  # output shape
    detail: str  # kernel shape, groups
    milliseconds: float
    delegated: bool


def _has_data(model, tensor):
    data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
    return data is not None and len(data) > 0


def single_op_model(model, index):
    """A ModelT holding op `index` of `model` alone: constants kept, other inputs become model inputs."""
    from tensorflow.lite.python import schema_py_generated as schema

    graph = model.subgraphs[0]
    op = graph.operators[index]
    single = schema.ModelT()
    single.version, single.description = model.version, b"one op"
    single.operatorCodes = model.operatorCodes
    single.buffers = [schema.BufferT()]
    sub = schema.SubGraphT()
    sub.tensors, sub.inputs, sub.outputs = [], [], []
    renumber = {}

    def take(old):
        if old < 0:
            return old
        if old not in renumber:
            tensor = copy.copy(graph.tensors[old])
            constant = _has_data(model, tensor)
            single.buffers.append(model.buffers[tensor.buffer] if constant else schema.BufferT())
            tensor.buffer = len(single.buffers) - 1
            if not constant and old not in op.outputs:
                sub.inputs.append(len(sub.tensors))
            renumber[old] = len(sub.tensors)
            sub.tensors.append(tensor)
        return renumber[old]

    new_op = copy.copy(op)
    new_op.inputs = [take(int(t)) for t in op.inputs]
    new_op.outputs = [take(int(t)) for t in op.outputs]
    sub.outputs = list(new_op.outputs)
    sub.operators = [new_op]
    single.subgraphs = [sub]
    return single


def _random_inputs(interpreter, rng):
    for detail in interpreter.get_input_details():
        dtype, shape = detail["dtype"], detail["shape"]
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            value = rng.integers(max(info.min, -128), min(info.max, 127) + 1, shape).astype(dtype)
        else:
            value = rng.standard_normal(shape).astype(dtype)
        interpreter.set_tensor(detail["index"], value)


def _time_ms(interpreter, runs, warmup):
    import time

    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def _detail(model, op, label):
    graph = model.subgraphs[0]
    if label.startswith(("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")) and len(op.inputs) > 1:
        weights = [int(side) for side in graph.tensors[op.inputs[1]].shape]
        groups = ""
        if label.startswith("CONV_2D"):
            channels_in = int(graph.tensors[op.inputs[0]].shape[-1])
            if weights[-1] and channels_in // weights[-1] > 1:
                groups = f" groups={channels_in // weights[-1]}"
        return f"w{'x'.join(map(str, weights))}{groups}"
    return ""


def profile(path, threads=1, runs=50, warmup=5, seed=0):
    """(list of OpTime in graph order, whole-model ms, delegate partitions, ops left to TFLite kernels)."""
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.lite.tools import flatbuffer_utils

    from mobilenets.deploy.litert import op_labels, undelegated_ops

    rng = np.random.default_rng(seed)
    whole = Interpreter(model_path=path, num_threads=threads)  # first: it says clearly what is wrong with a file
    whole.allocate_tensors()
    model = flatbuffer_utils.read_model(path)
    _random_inputs(whole, rng)
    whole_ms = _time_ms(whole, runs, warmup)
    partitions = sum(node["op_name"] == "DELEGATE" for node in whole._get_ops_details())
    left = undelegated_ops(whole)
    labels = op_labels(model)
    graph = model.subgraphs[0]
    rows = []
    for index, (op, label) in enumerate(zip(graph.operators, labels)):
        content = bytes(flatbuffer_utils.convert_object_to_bytearray(single_op_model(model, index)))
        interpreter = Interpreter(model_content=content, num_threads=threads)
        interpreter.allocate_tensors()
        _random_inputs(interpreter, rng)
        delegated = not undelegated_ops(interpreter)
        shape = "x".join(str(int(side)) for side in graph.tensors[op.outputs[0]].shape)
        rows.append(OpTime(index, label, shape, _detail(model, op, label), _time_ms(interpreter, runs, warmup), delegated))
    return rows, whole_ms, partitions, left


def format_profile(rows, whole_ms, partitions, left, top=None, by_kind=False):
    total = sum(row.milliseconds for row in rows) or 1.0
    lines = [
        f"whole model {whole_ms:.3f} ms; sum of {len(rows)} ops timed alone {total:.3f} ms; "
        f"{partitions} XNNPACK partition(s); left to TFLite kernels: "
        + (", ".join(f"{name} x{count}" for name, count in left.items()) or "none")
    ]
    if by_kind:
        kinds = {}
        for row in rows:
            count, ms = kinds.get(row.op, (0, 0.0))
            kinds[row.op] = (count + 1, ms + row.milliseconds)
        lines.append(f"{'op':<30} {'count':>5} {'ms':>9} {'share':>7}")
        for name, (count, ms) in sorted(kinds.items(), key=lambda item: -item[1][1])[:top]:
            lines.append(f"{name:<30} {count:>5} {ms:>9.3f} {100 * ms / total:>6.1f}%")
        return "\n".join(lines)
    shown = sorted(rows, key=lambda row: -row.milliseconds)[:top] if top else rows
    lines.append(f"{'#':>4} {'op':<30} {'output':<16} {'ms':>8} {'share':>7}  where  detail")
    for row in shown:
        where = "xnn" if row.delegated else "TFLITE"
        lines.append(f"{row.index:>4} {row.op:<30} {row.shape:<16} {row.milliseconds:>8.3f} "
                     f"{100 * row.milliseconds / total:>6.1f}%  {where:<6} {row.detail}")
    return "\n".join(lines)
