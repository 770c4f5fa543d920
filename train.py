"""`python train.py --help`: the same program as `mobilenets-train`
(mobilenets/commands/train.py), kept at the repository root for a checkout without an install."""

import sys

from mobilenets.commands.train import main

if __name__ == "__main__":
    sys.exit(main())
