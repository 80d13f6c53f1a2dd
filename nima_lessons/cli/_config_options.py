"""Command-line options generated from a settings dataclass, such as ``PipelineConfig``.

Each field becomes one option: its name (``median_radius`` -> ``--median-radius``),
type, default, choices (from a ``Literal`` annotation, else from the ``{"a", "b"}``
type of its numpydoc entry) and help text (that entry's description), so that a
field added to the dataclass is on the command line without further work.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Mapping

__all__ = ["add_dataclass_options", "field_docs", "option_name", "options_to_config"]

NONE_WORDS = ("none", "None")
_SECTION = re.compile(r"^(Attributes|Parameters)\n-+\n", re.MULTILINE)
_ENTRY = re.compile(r"^(?P<names>[A-Za-z_][\w, ]*?)\s*:\s*(?P<type>.*)$")


def option_name(field: str) -> str:
    """Return the option of a field.

    Examples
    --------
    >>> option_name("median_radius")
    '--median-radius'
    """
    return "--" + field.replace("_", "-")


def field_docs(cls: type) -> dict[str, tuple[str, str]]:
    """Read ``{field: (type text, description)}`` from a class's numpydoc docstring.

    The ``Attributes`` (or ``Parameters``) section is read; an entry naming
    several fields (``numerator, denominator : str``) documents each of them.

    Examples
    --------
    >>> class Settings:
    ...     '''Settings.
    ...
    ...     Attributes
    ...     ----------
    ...     size, depth : int
    ...         How big, in pixels.
    ...     '''
    >>> field_docs(Settings)["depth"]
    ('int', 'How big, in pixels.')
    """
    text = inspect.cleandoc(cls.__doc__ or "")
    match = _SECTION.search(text)
    if match is None:
        return {}
    docs: dict[str, tuple[str, str]] = {}
    names: list[str] = []
    kind, lines = "", []
    for line in [*text[match.end() :].splitlines(), "End of section"]:
        if not line.strip():
            continue
        if line.startswith(" "):
            lines.append(line.strip())
            continue
        docs.update({name: (kind, " ".join(lines)) for name in names})
        entry = _ENTRY.match(line)
        if entry is None:
            break  # the next section's title
        names = [name.strip() for name in entry["names"].split(",")]
        kind, lines = entry["type"].strip(), []
    return docs


def add_dataclass_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    aliases: Mapping[str, tuple[str, ...]] | None = None,
) -> dict[str, argparse.Action]:
    """Add one option per field of the dataclass ``cls`` to ``parser``.

    Options are left out of the parsed namespace unless given (their argparse
    default is ``SUPPRESS``), so that :func:`options_to_config` tells explicit
    values from defaults; the help text shows each field's default.

    Parameters
    ----------
    parser : argparse.ArgumentParser or argument group
        Where to add the options.
    cls : type
        A dataclass whose fields all have defaults.
    aliases : mapping, optional
        Further option strings of some fields, e.g. ``{"segment_method":
        ("--segment",)}``.

    Returns
    -------
    dict
        ``{field: argparse.Action}``.
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    actions = {}
    for field in dataclasses.fields(cls):
        kind_text, description = docs.get(field.name, ("", ""))
        default = _default(field)
        options = _argparse_options(hints[field.name], kind_text)
        help_text = _plain(description) or field.name.replace("_", " ")
        if _accepts_none(hints[field.name]):
            help_text += " 'none' gives None."
        help_text = f"{help_text} (default: {_shown(default)})".replace("%", "%%")
        names = (option_name(field.name), *(aliases or {}).get(field.name, ()))
        actions[field.name] = parser.add_argument(
            *names, dest=field.name, default=argparse.SUPPRESS, help=help_text, **options
        )
    return actions


def options_to_config(args: argparse.Namespace, cls: type, base=None):
    """Build a ``cls`` from a base (or the defaults) and the options given explicitly.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed with options from :func:`add_dataclass_options`.
    cls : type
        The dataclass.
    base : cls instance, optional
        The values of the options not given (a preset); default ``cls()``.

    Returns
    -------
    cls instance
        Validated by the dataclass itself.
    """
    given = {
        field.name: _from_words(getattr(args, field.name))
        for field in dataclasses.fields(cls)
        if hasattr(args, field.name)
    }
    base = cls() if base is None else base
    return dataclasses.replace(base, **given)


def _plain(text: str) -> str:
    """Docstring markup as plain text: ````x```` and ``:func:`x``` become x."""
    text = re.sub(r"``(.*?)``", r"\1", text)
    return re.sub(r":\w+:`~?([^`]*)`", r"\1", text)


def _accepts_none(hint) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in (
        typing.get_args(hint)
    )


def _from_words(value):
    """Several words of one option (a list) become a tuple, ``none`` alone None."""
    if isinstance(value, list):
        return None if value == [None] else tuple(value)
    return value


def _default(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    raise TypeError(f"field {field.name} has no default; it cannot be an option")


def _shown(value) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value)) or "none"
    return str(value)


def _argparse_options(hint, kind_text: str) -> dict:
    """Type, choices, nargs or action of an option, from a type annotation."""
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        optional = len(members) < len(typing.get_args(hint))
        hint = members[0] if len(members) == 1 else str
    origin = typing.get_origin(hint)
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if origin is typing.Literal:
        choices = list(typing.get_args(hint))
        parse = _parser(type(choices[0]), optional)
        return {"type": parse, "choices": _with_none(choices, optional)}
    if origin is tuple:
        items = [item for item in typing.get_args(hint) if item is not Ellipsis]
        item = items[0] if items else str
        fixed = len(items) == len(typing.get_args(hint)) and items and not optional
        nargs = len(items) if fixed else "+"
        # A list of any length can be empty: the word "none" says so.
        parse = _parser(item, optional or not fixed)
        return {"type": parse, "nargs": nargs, "metavar": item.__name__.upper()}
    base = hint if hint in (int, float, str) else str
    options: dict = {"type": _parser(base, optional)}
    documented = _documented_choices(kind_text)
    if documented:
        options["choices"] = _with_none(documented, optional)
    else:
        options["metavar"] = base.__name__.upper()
    return options


def _with_none(choices: list, optional: bool) -> list:
    return [*choices, None] if optional else choices


def _documented_choices(kind_text: str) -> list | None:
    """Choices written as a set in a numpydoc type: ``{"disk", "square"}``."""
    match = re.match(r"^\{(.*)\}", kind_text)
    if match is None:
        return None
    try:
        return list(ast.literal_eval(f"[{match.group(1)}]"))
    except (ValueError, SyntaxError):
        return None


def _parser(kind: type, optional: bool):
    """A function turning an option's text into ``kind`` (and "none" into None)."""

    def parse(text: str):
        if optional and text in NONE_WORDS:
            return None
        if kind is tuple or kind is list:
            return ast.literal_eval(text)
        return kind(text)

    parse.__name__ = kind.__name__  # argparse names the type in its errors
    return parse
