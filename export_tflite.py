"""`python export_tflite.py --help`: the same program as `mobilenets-export`
(mobilenets/commands/export.py), kept at the repository root for a checkout without an install."""

import sys

from mobilenets.commands.export import main

if __name__ == "__main__":
    sys.exit(main())
