"""Looking into `.tflite` files and timing them with the LiteRT interpreter.

Metadata: the TFLite schema (tensorflow/lite/schema/schema.fbs) gives a model
a list of named byte buffers, `Model.metadata`; runtimes ignore names they do
not know, so a JSON description travels inside the file, and the standard
TFLite metadata (`mobilenets.deploy.metadata`) under "TFLITE_METADATA". The
input/output tensors (type, quantization) and whether the output is a softmax
are read from the flatbuffer too. Ops: builtin op names
and fused activations read from the flatbuffer. Delegation and latency come
from a live interpreter (`mobilenets.deploy.runtime.TFLitePredictor`, whose
default delegate is XNNPACK).
"""

import json
import time

import numpy as np


def random_images(count, shape, seed=0):
    """Uniform random raw pixels (float32), when no real images are at hand."""
    return np.random.default_rng(seed).uniform(0, 255, (count, *shape)).astype(np.float32)


def embed_metadata(flatbuffer, name, payload):
    """`flatbuffer` (bytes) with `payload` (bytes) stored in its `Model.metadata` under `name`."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(payload, np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = name, len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name not in (name, name.encode())] + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def metadata_buffer(data, name):
    """The bytes stored under `name` in `Model.metadata` of a .tflite flatbuffer (`data`), or None."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(data, 0)
    for index in range(model.MetadataLength()):
        entry = model.Metadata(index)
        if entry.Name().decode() == name:
            return bytes(model.Buffers(entry.Buffer()).DataAsNumpy())
    return None


def read_metadata(path, name):
    """The JSON stored by `embed_metadata` under `name` in a .tflite file, or None."""
    with open(path, "rb") as f:
        payload = metadata_buffer(f.read(), name)
    return None if payload is None else json.loads(payload.decode())


TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 9: "int8"}  # schema.fbs TensorType


def io_tensors(data):
    """{'input': ..., 'output': ...} of a one-input, one-output .tflite flatbuffer (`data`).

    Each: name, shape, dtype and quantization ((scale, zero_point), or None when not quantized).
    """
    from tensorflow.lite.python import schema_py_generated as schema

    subgraph = schema.Model.GetRootAsModel(data, 0).Subgraphs(0)

    def describe(index):
        tensor = subgraph.Tensors(index)
        quantization = tensor.Quantization()
        scale = quantization.ScaleAsNumpy() if quantization is not None and quantization.ScaleLength() else None
        return {
            "name": tensor.Name().decode(),
            "shape": [int(side) for side in tensor.ShapeAsNumpy()],
            "dtype": TENSOR_TYPES.get(tensor.Type(), str(tensor.Type())),
            "quantization": None if scale is None else (float(scale[0]), int(quantization.ZeroPointAsNumpy()[0])),
        }

    return {"input": describe(subgraph.Inputs(0)), "output": describe(subgraph.Outputs(0))}


def outputs_softmax(data):
    """True when the output of a .tflite flatbuffer (`data`) is a SOFTMAX (through (de)quantize ops): probabilities."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(data, 0)
    subgraph = model.Subgraphs(0)
    producers = {}
    for index in range(subgraph.OperatorsLength()):
        op = subgraph.Operators(index)
        for output in op.OutputsAsNumpy():
            producers[int(output)] = op
    tensor = subgraph.Outputs(0)
    passing = (schema.BuiltinOperator.QUANTIZE, schema.BuiltinOperator.DEQUANTIZE)
    while tensor in producers:
        code = model.OperatorCodes(producers[tensor].OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.SOFTMAX:
            return True
        if builtin not in passing:
            return False
        tensor = int(producers[tensor].Inputs(0))
    return False


def op_labels(model):
    """['QUANTIZE', 'CONV_2D+RELU6', ...]: each op of a ModelT (flatbuffer_utils.read_model), with its fused activation."""
    from tensorflow.lite.python import schema_py_generated as schema

    names = {value: key for key, value in vars(schema.BuiltinOperator).items() if not key.startswith("_")}
    activations = {value: key for key, value in vars(schema.ActivationFunctionType).items() if not key.startswith("_")}
    labels = []
    for op in model.subgraphs[0].operators:
        code = model.operatorCodes[op.opcodeIndex]
        name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
        fused = getattr(op.builtinOptions, "fusedActivationFunction", 0)
        labels.append(name + (f"+{activations[fused]}" if fused else ""))
    return labels


def op_summary(path):
    """{'CONV_2D+RELU6': 18, ...}: the builtin ops of a .tflite file with fused activations, most frequent first."""
    from tensorflow.lite.tools import flatbuffer_utils

    counts = {}
    for label in op_labels(flatbuffer_utils.read_model(path)):
        counts[label] = counts.get(label, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def undelegated_ops(interpreter):
    """{'GATHER': 3, ...}: ops the delegates left to TFLite's own kernels (empty: all delegated).

    LiteRT keeps the replaced nodes in its node list and appends one DELEGATE
    node per partition; walking back from a DELEGATE's outputs to its inputs
    finds the ops it replaced.
    """
    nodes = interpreter._get_ops_details()
    ops = [node for node in nodes if node["op_name"] != "DELEGATE"]
    producer = {int(tensor): node["index"] for node in ops for tensor in node["outputs"]}
    covered = set()
    for delegate in (node for node in nodes if node["op_name"] == "DELEGATE"):
        boundary = {int(tensor) for tensor in delegate["inputs"]}
        stack = [int(tensor) for tensor in delegate["outputs"]]
        while stack:
            tensor = stack.pop()
            index = producer.get(tensor)
            if tensor in boundary or index is None or index in covered:
                continue
            covered.add(index)
            stack.extend(int(t) for t in nodes[index]["inputs"] if t >= 0)
    left = {}
    for node in ops:
        if node["index"] not in covered:
            left[node["op_name"]] = left.get(node["op_name"], 0) + 1
    return left


class InvokeTimer:
    """Times single invokes of a `TFLitePredictor` on a fixed random input."""

    def __init__(self, predictor):
        self.predictor = predictor
        predictor.predict(random_images(1, predictor.input_shape))  # sets the input; the first invoke sets delegates up

    def __call__(self):
        start = time.perf_counter()
        self.predictor.interpreter.invoke()
        return time.perf_counter() - start


def median_latencies_ms(timers, runs=50, warmup=5, block=25):
    """Median invoke time of each `InvokeTimer`, in milliseconds.

    The timers take turns in blocks of `block` consecutive invokes (the first
    of each block untimed): each model runs in its steady state, weights in
    cache as in an app that keeps invoking it, while load changes on a shared
    machine hit every model alike.
    """
    for timer in timers:
        for _ in range(warmup):
            timer()
    seconds = [[] for _ in timers]
    while len(seconds[0]) < runs:
        for times, timer in zip(seconds, timers):
            timer()
            times.extend(timer() for _ in range(min(block, runs - len(times))))
    return [1000.0 * float(np.median(times)) for times in seconds]


def append_float_softmax(flatbuffer):
    """`flatbuffer` (bytes) with a float32 SOFTMAX after its float32 output.

    An int8 model with float input and output ends in DEQUANTIZE; a softmax
    quantized by the converter would be an int8 SOFTMAX, which XNNPACK does
    not run (it would split the graph at the end). Appended after the
    DEQUANTIZE it runs in float32, delegated like the rest.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    graph = model.subgraphs[0]
    logits = graph.outputs[0]
    if graph.tensors[logits].type != schema.TensorType.FLOAT32:
        raise ValueError("append_float_softmax needs a float32 output")
    codes = [max(code.builtinCode, code.deprecatedBuiltinCode) for code in model.operatorCodes]
    if schema.BuiltinOperator.SOFTMAX not in codes:
        code = schema.OperatorCodeT()
        code.builtinCode, code.deprecatedBuiltinCode, code.version = schema.BuiltinOperator.SOFTMAX, 0, 1
        code.deprecatedBuiltinCode = min(schema.BuiltinOperator.SOFTMAX, 127)
        model.operatorCodes.append(code)
        codes.append(schema.BuiltinOperator.SOFTMAX)
    buffer = schema.BufferT()
    model.buffers.append(buffer)
    probabilities = schema.TensorT()
    probabilities.shape = list(graph.tensors[logits].shape)
    probabilities.shapeSignature = graph.tensors[logits].shapeSignature
    probabilities.type, probabilities.buffer, probabilities.name = schema.TensorType.FLOAT32, len(model.buffers) - 1, b"probabilities"
    graph.tensors.append(probabilities)
    output = len(graph.tensors) - 1
    op = schema.OperatorT()
    op.opcodeIndex = codes.index(schema.BuiltinOperator.SOFTMAX)
    op.inputs, op.outputs = [logits], [output]
    op.builtinOptionsType = schema.BuiltinOptions.SoftmaxOptions
    op.builtinOptions = schema.SoftmaxOptionsT()
    op.builtinOptions.beta = 1.0
    graph.operators.append(op)
    graph.outputs = [output]
    for signature in model.signatureDefs or []:
        for tensor_map in signature.outputs or []:
            if tensor_map.tensorIndex == logits:
                tensor_map.tensorIndex = output
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
