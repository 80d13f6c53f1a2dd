"""Placeholder for the `nima-lessons bench` subcommand (replaced by its owner)."""


def add_parser(subparsers):
    parser = subparsers.add_parser("bench", help="(not available yet)")
    parser.set_defaults(func=lambda args: (_ for _ in ()).throw(NotImplementedError("bench")))
    return parser
