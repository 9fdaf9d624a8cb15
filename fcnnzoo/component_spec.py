"""Parsing of component specs such as ``"random_crop:padding=2,p=0.5"``.

The command line takes augmenters, quantizers and datasets in this form,
and :func:`fcnnzoo.create_augmenter` accepts it too, so a spec works the
same from a shell and from Python. Importing this module imports no torch.
"""

from __future__ import annotations

import math
import re
from typing import Any
from typing import Final

__all__ = ["format_component_spec", "parse_component_spec"]

_INT_PATTERN: Final = re.compile(r"[+-]?\d+")


def parse_component_spec(text: str, option: str = "--augment") -> tuple[str, dict[str, Any]]:
    """Parse ``NAME[:key=value,...]`` into a name and keyword arguments.

    ``NAME`` may be a qualified ``plugin:name``, as in
    ``"myplugin:rotate:degrees=10"``.

    Values become ``bool`` for ``true``/``false`` (any case), ``int`` for
    integer literals, ``float`` for other finite numbers and stay ``str``
    otherwise, so ``"random_crop:padding=2,p=0.5"`` gives
    ``("random_crop", {"padding": 2, "p": 0.5})``. A value in brackets is a
    list of such values: ``"rotate:degrees=[-10,30]"`` gives
    ``("rotate", {"degrees": [-10, 30]})``.

    Args:
        text: the spec.
        option: the option name, used in error messages.

    Returns:
        ``(name, arguments)``.

    Raises:
        ValueError: if the name is empty, an item lacks ``=``, a key is not
            an identifier or appears twice, or a bracket is not closed.
    """
    # NAME may be qualified as plugin:name, so it ends at the last ':'
    # before the first '='.
    equals = text.find("=")
    if equals < 0:
        name, separator, options = (text[:-1], ":", "") if text.endswith(":") else (text, "", "")
    else:
        name, separator, options = text[:equals].rpartition(":")
        options += text[equals:]
    name = name.strip()
    if not name:
        raise ValueError(f"Invalid {option} value {text!r}: expected NAME[:key=value,...] with a non-empty NAME.")
    arguments: dict[str, Any] = {}
    if not separator:
        return name, arguments
    if not options.strip():
        raise ValueError(f"Invalid {option} value {text!r}: nothing follows ':'. Drop the ':' or add key=value pairs.")

    for item in _split_top_level(options, text, option):
        key, equals, value = item.partition("=")
        key = key.strip()
        if not equals:
            raise ValueError(f"Invalid {option} value {text!r}: {item.strip()!r} is not a key=value pair.")
        if not key.isidentifier():
            raise ValueError(f"Invalid {option} value {text!r}: key {key!r} is not a valid argument name.")
        if key in arguments:
            raise ValueError(f"Invalid {option} value {text!r}: key {key!r} is given twice.")
        arguments[key] = _parse_value(value.strip(), text, option)
    return name, arguments


def format_component_spec(name: str, arguments: dict[str, Any]) -> str:
    """Write ``name`` and ``arguments`` back as a spec that :func:`parse_component_spec` reads."""
    if not arguments:
        return name

    def text(value: Any) -> str:
        if isinstance(value, (list, tuple)):
            return "[" + ",".join(text(item) for item in value) + "]"
        return str(value).lower() if isinstance(value, bool) else str(value)

    return name + ":" + ",".join(f"{key}={text(value)}" for key, value in arguments.items())


def _split_top_level(options: str, text: str, option: str) -> list[str]:
    """Split ``options`` at the commas that are outside brackets."""
    items = []
    depth = 0
    start = 0
    for index, character in enumerate(options):
        if character == "[":
            depth += 1
        elif character == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"Invalid {option} value {text!r}: a ']' has no matching '['.")
        elif character == "," and depth == 0:
            items.append(options[start:index])
            start = index + 1
    if depth != 0:
        raise ValueError(f"Invalid {option} value {text!r}: a '[' is not closed with ']'.")
    items.append(options[start:])
    return items


def _parse_value(value: str, text: str, option: str) -> Any:
    if value.startswith("[") and value.endswith("]"):
        inner = value[1:-1].strip()
        if not inner:
            return []
        if "[" in inner or "]" in inner:
            raise ValueError(f"Invalid {option} value {text!r}: lists cannot be nested.")
        return [_coerce(item.strip()) for item in inner.split(",")]
    return _coerce(value)


def _coerce(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if _INT_PATTERN.fullmatch(text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text
