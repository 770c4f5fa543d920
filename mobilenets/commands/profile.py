"""Where the time of a `.tflite` goes, op by op (mobilenets/deploy/profile.py measures it).

    mobilenets-profile model.tflite [--threads 1] [--runs 50] [--top 20] [--by-kind]
"""

import sys

from mobilenets.commands import cli


def main(argv=None):
    parser = cli.ArgumentParser(__doc__)
    parser.add_argument("model", help="a .tflite file")
    parser.add_argument("--threads", type=cli.positive_int, default=1)
    parser.add_argument("--runs", type=cli.positive_int, default=50, help="timed invokes per op (median)")
    parser.add_argument("--top", type=cli.positive_int, default=None,
                        help="only the N slowest ops (with --by-kind: op kinds)")
    parser.add_argument("--by-kind", action="store_true", help="one line per op kind: count, total ms, share")
    args = parser.parse_args(argv)
    cli.import_quietly("tensorflow")
    from mobilenets.deploy.profile import format_profile, profile

    def action():
        from mobilenets.errors import CheckpointError, first_line

        with cli.held_stderr():  # LiteRT's own lines ("Created TensorFlow Lite XNNPACK delegate for CPU.")
            try:
                result = profile(args.model, args.threads, args.runs)
            except (OSError, ValueError, RuntimeError) as error:
                raise CheckpointError(f"cannot profile {args.model} ({first_line(error, 200)}); "
                                      "pass a .tflite file written by export_tflite.py") from None
        print(format_profile(*result, top=args.top, by_kind=args.by_kind))

    return cli.run(action)


if __name__ == "__main__":
    sys.exit(main())
