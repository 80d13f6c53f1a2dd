"""Placeholder for the `nima-lessons pipeline` subcommand (replaced by its owner)."""


def add_parser(subparsers):
    parser = subparsers.add_parser("pipeline", help="(not available yet)")
    parser.set_defaults(func=lambda args: (_ for _ in ()).throw(NotImplementedError("pipeline")))
    return parser
