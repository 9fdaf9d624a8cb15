"""Checks that a plugin keeps the hook contract, run before its components are accepted.

Each check raises :class:`~fcnnzoo.errors.PluginError` with a message that
names the plugin, the hook or component at fault and what to change.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
from collections.abc import Sequence
from typing import Any
from typing import Final

import pluggy

from fcnnzoo import hookspecs
from fcnnzoo.errors import PluginError
from fcnnzoo.specs import ArchitectureSpec

__all__ = [
    "FACTORY_REFERENCE",
    "check_api_version",
    "check_hook_implementations",
    "check_name",
    "validate_specs",
]

# "package.module:attribute.path", the same form as an entry point's value.
FACTORY_REFERENCE: Final = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")

# The hook names that fcnnzoo defines, read from the hook specification module.
HOOK_NAMES: Final = tuple(name for name in vars(hookspecs) if name.startswith(f"{hookspecs.PROJECT_NAME}_"))


def _with_article(noun: str) -> str:
    """Return ``noun`` with "a" or "an" in front, as English spells it for these nouns."""
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def check_name(name: object, what: str, plugin_name: str) -> str:
    """Return ``name`` if it can be a component name, else raise.

    A name is a non-empty string with no whitespace and no ``:``, which
    separates the plugin from the name in a qualified name.

    Raises:
        PluginError: naming the plugin, the kind of component and the name.
    """
    if not isinstance(name, str):
        raise PluginError(f"Plugin {plugin_name!r} registered {_with_article(what)} whose name is {_with_article(type(name).__name__)}, not a string.")
    if not name:
        raise PluginError(f"Plugin {plugin_name!r} registered {_with_article(what)} with an empty name. Give it a name such as 'my_{what}'.")
    if any(character.isspace() for character in name):
        raise PluginError(f"Plugin {plugin_name!r} registered the {what} name {name!r}, which contains whitespace. Use underscores instead.")
    if ":" in name:
        raise PluginError(
            f"Plugin {plugin_name!r} registered the {what} name {name!r}, which contains ':'. "
            "The colon separates plugin and name in qualified names such as 'plugin:name', so remove it."
        )
    return name


def check_api_version(plugin: object, plugin_name: str) -> str | None:
    """Return the plugin's declared API version specifier, or None if it declares none.

    Raises:
        PluginError: if the declaration is not a valid version specifier.
    """
    from packaging.specifiers import InvalidSpecifier
    from packaging.specifiers import SpecifierSet

    declared = getattr(plugin, hookspecs.API_VERSION_ATTRIBUTE, None)
    if declared is None:
        return None
    try:
        SpecifierSet(declared)
    except (InvalidSpecifier, TypeError):
        raise PluginError(
            f"Plugin {plugin_name!r} declares {hookspecs.API_VERSION_ATTRIBUTE} = {declared!r}, which is not a version "
            "specifier. Use a string such as '>=1.0,<2'."
        ) from None
    return str(declared)


def api_version_supported(specifier: str) -> bool:
    """Return whether the host's :data:`~fcnnzoo.hookspecs.API_VERSION` satisfies ``specifier``."""
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(specifier).contains(hookspecs.API_VERSION, prereleases=True)


def check_hook_implementations(manager: pluggy.PluginManager, plugin: object, plugin_name: str) -> None:
    """Check every ``@fcnnzoo.hookimpl`` function of ``plugin`` against the hook specs.

    pluggy would reject a wrong argument too, but with a message about its
    own internals; this names the plugin, the hook and the argument.

    Raises:
        PluginError: for an implementation of an unknown hook (unless marked
            ``optionalhook=True``), or one that takes an argument the hook
            spec does not provide.
    """
    for attribute in dir(plugin):
        options = manager.parse_hookimpl_opts(plugin, attribute)
        if options is None:
            continue
        function = getattr(plugin, attribute)
        spec_name = options.get("specname") or attribute

        spec_function = getattr(hookspecs, spec_name, None) if spec_name in HOOK_NAMES else None
        if spec_function is None:
            if options.get("optionalhook"):
                continue
            close = difflib.get_close_matches(spec_name, HOOK_NAMES, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else f" The hooks are: {', '.join(HOOK_NAMES)}."
            raise PluginError(f"Plugin {plugin_name!r} implements {spec_name!r}, which is not an fcnnzoo hook.{hint}")

        provided = list(inspect.signature(spec_function).parameters)
        for parameter in inspect.signature(function).parameters.values():
            if parameter.name not in provided and parameter.default is inspect.Parameter.empty:
                raise PluginError(
                    f"Plugin {plugin_name!r}: hook {spec_name} takes the argument {parameter.name!r}, which the hook spec "
                    f"{spec_name}({', '.join(provided)}) does not provide. Remove the argument."
                )


def validate_specs(result: object, hook: str, spec_type: type, what: str, plugin_name: str) -> list[Any]:
    """Check what one hook returned and return its specs with ``plugin`` filled in.

    Args:
        result: the hook's return value.
        hook: the hook name, for messages.
        spec_type: the spec class the hook must return.
        what: the component kind, for messages (``"architecture"``).
        plugin_name: the plugin that returned ``result``.

    Returns:
        The specs, each a copy with ``plugin`` set, and with ``input_size``,
        ``min_input_size`` and ``tags`` of architectures turned into tuples.

    Raises:
        PluginError: if ``result`` is not a list or tuple of ``spec_type``, or
            a spec has an invalid name, factory or architecture field, or
            one name appears twice.
    """
    if not isinstance(result, (list, tuple)):
        raise PluginError(f"Plugin {plugin_name!r}: hook {hook} returned {type(result).__name__}; expected a list of {spec_type.__name__}.")

    specs = []
    seen: set[str] = set()
    for item in result:
        if not isinstance(item, spec_type):
            raise PluginError(f"Plugin {plugin_name!r}: hook {hook} returned a {type(item).__name__}; expected {spec_type.__name__}.")
        name = check_name(item.name, what, plugin_name)
        if name in seen:
            raise PluginError(f"Plugin {plugin_name!r} returned the {what} {name!r} twice.")
        seen.add(name)
        _check_factory(item.factory, what, name, plugin_name)
        if not isinstance(item.description, str):
            raise PluginError(f"Plugin {plugin_name!r}: the description of {what} {name!r} is a {type(item.description).__name__}, not a string.")
        changes: dict[str, Any] = {"plugin": plugin_name}
        if isinstance(item, ArchitectureSpec):
            changes.update(_check_architecture_fields(item, plugin_name))
        specs.append(dataclasses.replace(item, **changes))
    return specs


def _check_factory(factory: object, what: str, name: str, plugin_name: str) -> None:
    if isinstance(factory, str):
        if not FACTORY_REFERENCE.fullmatch(factory):
            raise PluginError(
                f"Plugin {plugin_name!r}: the factory of {what} {name!r} is {factory!r}, which is not a 'package.module:attribute' reference."
            )
        return
    if not callable(factory):
        raise PluginError(
            f"Plugin {plugin_name!r}: the factory of {what} {name!r} is a {type(factory).__name__}; "
            "expected a callable or a 'package.module:attribute' reference."
        )


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _size_pair(value: object) -> tuple[int, int] | None:
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2 and all(_is_positive_int(v) for v in value):
        return (int(value[0]), int(value[1]))
    return None


def _check_architecture_fields(spec: ArchitectureSpec, plugin_name: str) -> dict[str, Any]:
    where = f"Plugin {plugin_name!r}: architecture {spec.name!r}"
    for field in ("in_channels", "num_classes"):
        value = getattr(spec, field)
        if not _is_positive_int(value):
            raise PluginError(f"{where} declares {field}={value!r}; expected a positive integer.")

    input_size = _size_pair(spec.input_size)
    if input_size is None:
        raise PluginError(f"{where} declares input_size={spec.input_size!r}; expected (height, width) of positive integers.")
    min_input_size = None
    if spec.min_input_size is not None:
        min_input_size = _size_pair(spec.min_input_size)
        if min_input_size is None:
            raise PluginError(f"{where} declares min_input_size={spec.min_input_size!r}; expected (height, width) of positive integers or None.")
        if min_input_size[0] > input_size[0] or min_input_size[1] > input_size[1]:
            raise PluginError(f"{where} declares min_input_size={min_input_size}, which is larger than its input_size={input_size}.")

    tags = spec.tags
    if isinstance(tags, str) or not isinstance(tags, Sequence) or not all(isinstance(tag, str) for tag in tags):
        raise PluginError(f"{where} declares tags={tags!r}; expected a tuple of strings.")
    return {"input_size": input_size, "min_input_size": min_input_size, "tags": tuple(tags)}
