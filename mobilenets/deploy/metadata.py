"""Standard TFLite Model Metadata: what MediaPipe Tasks, the TFLite Task Library and Android Studio read.

    flatbuffer = populate(flatbuffer, image_classifier_metadata(...), {LABELS_FILE: labels_text})
    described = read(path)                      # a dict: name, input size, normalization, labels...
    print(format_description(described))

The schema is metadata_schema.fbs 1.5.0 (file identifier "M001"):
https://github.com/google-ai-edge/mediapipe/blob/master/mediapipe/tasks/metadata/metadata_schema.fbs.
Its Python classes (`mobilenets._vendor.metadata_schema_py_generated`) are the flatc output
mediapipe 1.2.3 ships, copied unmodified (mobilenets/_vendor/README.md): mediapipe's metadata
writers cannot run in that release (they import a C extension the wheel lacks) and mediapipe
cannot be pinned beside tensorflow-model-optimization (absl-py ~=2.3 vs ~=1.2), so only the
generated classes and the `flatbuffers` package are used.
As MediaPipe's MetadataPopulator does, the ModelMetadata flatbuffer is stored in the model's
`Model.metadata` under "TFLITE_METADATA" and the associated files (labels.txt) are packed into
the .tflite as an uncompressed zip archive appended after the model flatbuffer.

How MediaPipe reads it (mediapipe/tasks/cc/vision/utils/image_tensor_specs.cc,
components/processors/image_preprocessing_graph.cc): input tensor float32 or uint8 (int8 is
refused); a float32 input needs NormalizationOptions, and the image becomes
(pixel - mean) / std; a uint8 input gets the pixels as they are. Our models normalize in
their first layer, so a float32 file declares mean 0, std 1 (raw 0..255 pixels in). An
integer input tensor declares what its quantization computes, q = pixel / scale + zero_point,
i.e. mean = -zero_point * scale, std = scale.
"""

import io
import zipfile

import flatbuffers

from mobilenets._vendor import metadata_schema_py_generated as schema
from mobilenets.deploy import litert

METADATA_NAME = "TFLITE_METADATA"  # the name MediaPipe and the Task Library look for in Model.metadata
FILE_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"  # every field written here is in schema 1.0.0 (see the .fbs history)
LABELS_FILE = "labels.txt"
PIXEL_RANGE = (0.0, 255.0)
INTEGER_RANGES = {"uint8": (0.0, 255.0), "int8": (-128.0, 127.0)}
COLOR_SPACES = {value: key for key, value in vars(schema.ColorSpaceType).items() if not key.startswith("_")}


def input_normalization(dtype, quantization=None):
    """(mean, std) that map raw 0..255 pixels to the input tensor: (0, 1) for float, the quantization's for integers."""
    if dtype == "float32" or not quantization:
        return 0.0, 1.0
    scale, zero_point = quantization
    return -zero_point * scale, scale


def _tensor(name, description, content_type, content, stats_min, stats_max):
    tensor = schema.TensorMetadataT()
    tensor.name, tensor.description = name, description
    tensor.content = schema.ContentT()
    tensor.content.contentPropertiesType, tensor.content.contentProperties = content_type, content
    if stats_min:  # logits have no range to declare
        tensor.stats = schema.StatsT()
        tensor.stats.min, tensor.stats.max = list(stats_min), list(stats_max)
    return tensor


def image_classifier_metadata(
    name, description, version, input_size, num_classes, input_dtype="float32", input_quantization=None,
    probabilities=True, author="mobilenets", license_text=None,
):
    """The ModelMetadata flatbuffer (bytes) of a one-image-in, class-scores-out model.

    input_size: (height, width). input_dtype: the input tensor's type ('float32', 'uint8' or
    'int8'), with input_quantization (scale, zero_point) when integer. Labels are the
    associated file LABELS_FILE, which `populate` packs.
    """
    height, width = input_size
    mean, std = input_normalization(input_dtype, input_quantization)
    image = schema.ImagePropertiesT()
    image.colorSpace = schema.ColorSpaceType.RGB
    image.defaultSize = schema.ImageSizeT()
    image.defaultSize.width, image.defaultSize.height = width, height
    low, high = INTEGER_RANGES.get(input_dtype, [(p - mean) / std for p in PIXEL_RANGE])
    pixels = _tensor(
        "image",
        f"Input image to be classified: RGB, {height}x{width}, raw 0..255 pixels (the model normalizes them).",
        schema.ContentProperties.ImageProperties, image, [low], [high],
    )
    normalization = schema.ProcessUnitT()
    normalization.optionsType = schema.ProcessUnitOptions.NormalizationOptions
    normalization.options = schema.NormalizationOptionsT()
    normalization.options.mean, normalization.options.std = [float(mean)], [float(std)]
    pixels.processUnits = [normalization]

    kind = "probability" if probabilities else "logits"
    scores = _tensor(
        kind,
        f"{'Probabilities' if probabilities else 'Logits (unnormalized scores)'} of the {num_classes} labels "
        "respectively.",
        schema.ContentProperties.FeatureProperties, schema.FeaturePropertiesT(),
        [0.0] if probabilities else [], [1.0] if probabilities else [],
    )
    labels = schema.AssociatedFileT()
    labels.name, labels.type = LABELS_FILE, schema.AssociatedFileType.TENSOR_AXIS_LABELS
    labels.description = "Labels for categories that the model can recognize."
    scores.associatedFiles = [labels]

    subgraph = schema.SubGraphMetadataT()
    subgraph.inputTensorMetadata, subgraph.outputTensorMetadata = [pixels], [scores]
    model = schema.ModelMetadataT()
    model.name, model.description, model.version, model.author = name, description, version, author
    model.license = license_text
    model.subgraphMetadata = [subgraph]
    model.minParserVersion = MIN_PARSER_VERSION
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), FILE_IDENTIFIER)
    return bytes(builder.Output())


def populate(flatbuffer, metadata, files):
    """`flatbuffer` with `metadata` under METADATA_NAME and `files` ({name: bytes}) zipped after it.

    Any archive already appended to `flatbuffer` is dropped (the model is re-serialized).
    """
    model = litert.embed_metadata(flatbuffer, METADATA_NAME, metadata)
    archive = io.BytesIO()
    archive.write(model)
    with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_STORED) as packed:
        for name, data in files.items():
            packed.writestr(name, data)
    return archive.getvalue()


def labels_text(names):
    """The TENSOR_AXIS_LABELS file: one name a line."""
    return "".join(f"{name}\n" for name in names).encode("utf-8")


def associated_files(data):
    """{name: bytes} of the zip archive packed into a .tflite (empty when there is none)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as packed:
            return {name: packed.read(name) for name in packed.namelist()}
    except zipfile.BadZipFile:
        return {}


def _tensor_description(tensor):
    content = tensor.content
    described = {"name": _text(tensor.name), "description": _text(tensor.description)}
    if content is not None and content.contentPropertiesType == schema.ContentProperties.ImageProperties:
        properties = content.contentProperties
        described["color_space"] = COLOR_SPACES.get(properties.colorSpace, str(properties.colorSpace))
        if properties.defaultSize is not None:
            described["default_size"] = [properties.defaultSize.height, properties.defaultSize.width]
    for unit in tensor.processUnits or []:
        if unit.optionsType == schema.ProcessUnitOptions.NormalizationOptions:
            described["normalization"] = {"mean": [float(v) for v in unit.options.mean],
                                          "std": [float(v) for v in unit.options.std]}
    if tensor.stats is not None and tensor.stats.min is not None and len(tensor.stats.min):
        described["range"] = [float(tensor.stats.min[0]), float(tensor.stats.max[0])]
    described["associated_files"] = [
        {"name": _text(f.name), "type": f.type, "description": _text(f.description)}
        for f in tensor.associatedFiles or []
    ]
    return described


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


def read(path):
    """The standard metadata of a .tflite file as a dict (None without one).

    Keys: name, description, version, author, min_parser_version, inputs and outputs (lists
    of tensor dicts: name, color_space, default_size, normalization {mean, std}, range,
    associated_files), labels (the first TENSOR_AXIS_LABELS file's lines, or None),
    files (names of the packed files) and tensors (`litert.io_tensors`: shape, dtype,
    quantization of the model's own input and output tensors).
    """
    with open(path, "rb") as f:
        data = f.read()
    buffer = litert.metadata_buffer(data, METADATA_NAME)
    if buffer is None:
        return None
    if not schema.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0):
        raise ValueError(f"{METADATA_NAME} in {path} is not a ModelMetadata flatbuffer (identifier M001)")
    model = schema.ModelMetadataT.InitFromObj(schema.ModelMetadata.GetRootAs(buffer, 0))
    subgraph = (model.subgraphMetadata or [schema.SubGraphMetadataT()])[0]
    inputs = [_tensor_description(t) for t in subgraph.inputTensorMetadata or []]
    outputs = [_tensor_description(t) for t in subgraph.outputTensorMetadata or []]
    files = associated_files(data)
    labels = None
    for tensor in outputs:
        axis_labels = schema.AssociatedFileType.TENSOR_AXIS_LABELS
        names = [f["name"] for f in tensor["associated_files"] if f["type"] == axis_labels]
        if names and names[0] in files:
            labels = files[names[0]].decode("utf-8").splitlines()
            break
    return {
        "name": _text(model.name),
        "description": _text(model.description),
        "version": _text(model.version),
        "author": _text(model.author),
        "min_parser_version": _text(model.minParserVersion),
        "inputs": inputs,
        "outputs": outputs,
        "labels": labels,
        "files": sorted(files),
        "tensors": litert.io_tensors(data),
    }


def _quantization_text(tensor):
    if tensor.get("quantization") is None:
        return tensor["dtype"]
    scale, zero_point = tensor["quantization"]
    shift = f" - {zero_point}" if zero_point > 0 else f" + {-zero_point}" if zero_point < 0 else ""
    return f"{tensor['dtype']}, real = (q{shift}) * {scale:.6g}"


def _labels_text(labels):
    if labels is None:
        return "none packed"
    shown = ", ".join(labels[:5]) + (f", ... ({len(labels)} in all)" if len(labels) > 5 else "")
    return f"{len(labels)} in {LABELS_FILE}: {shown}"


def summary_lines(described):
    """[(name, value)] of what an app needs: input size and type, normalization, output, labels."""
    tensors = described["tensors"]
    image, scores = (described["inputs"] or [{}])[0], (described["outputs"] or [{}])[0]
    height, width = tensors["input"]["shape"][1:3]
    normalization = image.get("normalization")
    how = "none declared (MediaPipe refuses a float input without it)"
    if normalization:
        mean, std = normalization["mean"], normalization["std"]
        how = f"mean {', '.join(f'{m:g}' for m in mean)}, std {', '.join(f'{s:g}' for s in std)}"
        how += f": tensor = (pixel - mean) / std, range {image.get('range')}"
    return [
        ("model", f"{described['name']} {described['version'] or ''}: {described['description']}".strip()),
        ("input", f"{image.get('name')}: {height}x{width} {image.get('color_space', 'color unknown')}, "
                  f"{_quantization_text(tensors['input'])}"),
        ("normalization", how),
        ("output", f"{scores.get('name')}: {tensors['output']['shape'][-1]} classes, "
                   f"{_quantization_text(tensors['output'])}"),
        ("labels", _labels_text(described["labels"])),
    ]


def format_description(described):
    """The standard metadata as aligned 'name  value' lines (or a line saying there is none)."""
    if described is None:
        return f"no standard TFLite metadata ({METADATA_NAME}): MediaPipe Tasks cannot classify with this file"
    lines = summary_lines(described) + [
        ("author", described["author"]),
        ("parser version", f"{described['min_parser_version']} or later"),
        ("packed files", ", ".join(described["files"]) or "none"),
    ]
    width = max(len(name) for name, _ in lines)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in lines)
