"""Prints what an app needs to know about a .tflite file: its standard TFLite metadata.

    mobilenets-tflite-info model.tflite [more.tflite ...] [--json]

Input size, color space and type, the NormalizationOptions that map raw pixels
to the input tensor, the output (probabilities or logits) and its quantization,
and the labels packed in the file (`mobilenets.deploy.metadata`, the schema
MediaPipe Tasks reads). --json prints everything as JSON instead, our own
export description ("mobilenets" metadata) included.
"""

import json
import os
import sys

from mobilenets.commands import cli


def parse_args(argv=None):
    parser = cli.ArgumentParser(__doc__)
    parser.add_argument("paths", nargs="+", metavar="MODEL.tflite")
    parser.add_argument("--json", action="store_true", help="print the full metadata as JSON")
    return parser.parse_args(argv)


def describe(path):
    """{'standard': metadata.read(path), 'mobilenets': the export's own JSON or None}; one-line errors."""
    from mobilenets.deploy import litert, metadata
    from mobilenets.errors import CheckpointError, first_line

    if not os.path.isfile(path):
        raise CheckpointError(f"{path} does not exist; pass a .tflite file")
    try:
        return {"standard": metadata.read(path), "mobilenets": litert.read_metadata(path, "mobilenets")}
    except Exception as error:  # any failure to parse a user's file is reported the same way
        raise CheckpointError(
            f"{path} is not a readable .tflite file ({type(error).__name__}: {first_line(error, 200)}); export it again"
        ) from None


def main(argv=None):
    args = parse_args(argv)
    cli.import_quietly("tensorflow.lite.python.schema_py_generated")  # TensorFlow's start-up lines held back
    metadata = cli.import_quietly("mobilenets.deploy.metadata")

    def inspect_and_print():
        for index, path in enumerate(args.paths):
            described = describe(path)
            if args.json:
                print(json.dumps({"path": path, **described}, indent=2, default=str))
                continue
            print(("\n" if index else "") + path)
            print(metadata.format_description(described["standard"]))

    return cli.run(inspect_and_print)


if __name__ == "__main__":
    sys.exit(main())
