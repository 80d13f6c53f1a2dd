"""Placeholder for the `nima-lessons data` subcommand (replaced by its owner)."""


def add_parser(subparsers):
    parser = subparsers.add_parser("data", help="(not available yet)")
    parser.set_defaults(func=lambda args: (_ for _ in ()).throw(NotImplementedError("data")))
    return parser
