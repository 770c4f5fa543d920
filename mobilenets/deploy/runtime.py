"""The LiteRT interpreter as the app runs it: a `.tflite` file's outputs for raw pixels, timed.

    predictor = TFLitePredictor("model.tflite", num_threads=1)
    probabilities = predictor.predict(images)        # float32 (N, H, W, 3) raw 0..255 pixels
"""

import math
import time

import numpy as np

from mobilenets.errors import CheckpointError, first_line
from mobilenets.models.costs import Cost
from mobilenets.quiet import held_stderr


# Ops whose multiply-adds `flops.count` counts, and how many each output element costs from the weight shape.
TFLITE_COUNTED_OPS = {
    "CONV_2D": lambda weights: math.prod(weights[1:]),  # (out, kh, kw, in / groups)
    "DEPTHWISE_CONV_2D": lambda weights: math.prod(weights[1:3]),  # (1, kh, kw, channels)
    "FULLY_CONNECTED": lambda weights: math.prod(weights[1:]),  # (out, in)
}


class TFLitePredictor:
    """Outputs of a `.tflite` model, one image per invoke; times the invokes.

    Integer-quantized inputs and outputs are (de)quantized with the model's scale
    and zero point, so it takes the same raw 0..255 pixels as the Keras model.
    `probabilities`: the file ends in a softmax (our default export), else it
    outputs logits. `metadata`: its standard TFLite metadata
    (`mobilenets.deploy.metadata.read`), None without any. `feature_maps=True`
    takes a file with several outputs (a backbone's: `predict_outputs`).
    """

    def __init__(self, path, num_threads=None, feature_maps=False):
        from ai_edge_litert.interpreter import Interpreter

        try:
            with held_stderr():  # LiteRT's "Created TensorFlow Lite XNNPACK delegate for CPU."
                self.interpreter = Interpreter(model_path=path, num_threads=num_threads)
                self.interpreter.allocate_tensors()
            inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
            if len(inputs) != 1 or (len(outputs) != 1 and not feature_maps):
                raise ValueError(f"{len(inputs)} inputs and {len(outputs)} outputs, not one image in, logits out")
            if inputs[0]["shape"][0] != 1:
                self.interpreter.resize_tensor_input(inputs[0]["index"], [1, *inputs[0]["shape"][1:]])
                self.interpreter.allocate_tensors()
                inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        except (ValueError, RuntimeError) as error:
            raise CheckpointError(
                f"{path} is not a usable .tflite model ({first_line(error, 200)}); export it again"
            ) from None
        self.input, self.output, self.outputs = inputs[0], outputs[0], outputs
        self.probabilities, self.metadata = _read_file_description(path)
        self.input_shape = tuple(int(side) for side in self.input["shape"][1:])
        self.num_classes = int(self.output["shape"][-1])
        self.num_threads = num_threads
        self.cost = self._read_cost()
        self.cost_note = "as stored in the .tflite: BatchNorm folded into conv biases"
        self.seconds, self.invocations = 0.0, 0
        self._warm = False

    def _read_cost(self):
        """Cost of the conv and fully-connected ops; None when this runtime does not list ops."""
        interpreter = self.interpreter
        try:
            ops = interpreter._get_ops_details()
            shape = lambda index: [int(side) for side in interpreter._get_tensor_details(index, 0)["shape"]]
        except AttributeError:
            return None
        cost = Cost()
        for op in ops:
            per_output = TFLITE_COUNTED_OPS.get(op["op_name"])
            if per_output is None:
                continue
            weights = [shape(index) for index in op["inputs"][1:] if index >= 0]
            cost.params += sum(math.prod(w) for w in weights)
            cost.madds += math.prod(shape(op["outputs"][0])[1:]) * per_output(weights[0])
        return cost

    @property
    def latency_ms(self):
        return 1000.0 * self.seconds / self.invocations if self.invocations else None

    def _quantize(self, image):
        scale, zero_point = self.input["quantization"]
        dtype = self.input["dtype"]
        if not np.issubdtype(dtype, np.integer):
            return image.astype(dtype)
        limits = np.iinfo(dtype)
        return np.clip(np.round(image / scale + zero_point), limits.min, limits.max).astype(dtype)

    @staticmethod
    def _dequantize(values, details):
        scale, zero_point = details["quantization"]
        values = values.astype(np.float32)
        return (values - zero_point) * scale if np.issubdtype(details["dtype"], np.integer) and scale else values

    def _run(self, image):
        """Every output (float) for one raw-pixel image, in the file's order; the invoke is timed."""
        self.interpreter.set_tensor(self.input["index"], self._quantize(image[None]))
        if not self._warm:  # the first invoke prepares delegates: not part of the latency
            self.interpreter.invoke()
            self._warm = True
        start = time.perf_counter()
        self.interpreter.invoke()
        self.seconds += time.perf_counter() - start
        self.invocations += 1
        return [self._dequantize(self.interpreter.get_tensor(output["index"]), output)[0] for output in self.outputs]

    def predict(self, images):
        return np.stack([self._run(image)[0] for image in images])

    def predict_outputs(self, images):
        """[each output's values for `images`, stacked], in the file's output order (a backbone's feature maps)."""
        return [np.stack(values) for values in zip(*(self._run(image) for image in images))]


def _read_file_description(path):
    """(output is a softmax, standard metadata or None) of a .tflite file the interpreter loaded."""
    from mobilenets.deploy import litert, metadata

    with open(path, "rb") as f:
        probabilities = litert.outputs_softmax(f.read())
    try:
        described = metadata.read(path)
    except ValueError as error:  # a foreign or damaged TFLITE_METADATA: the model still runs
        described = {"error": first_line(error, 200)}
    return probabilities, described
