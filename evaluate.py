"""`python evaluate.py --help`: the same program as `mobilenets-evaluate`
(mobilenets/commands/evaluate.py), kept at the repository root for a checkout without an install."""

import sys

from mobilenets.commands.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
