"""Plugin manager: discovery, registration and lookup of components.

Built-in components and third-party packages register the same way, through
the hooks in :mod:`fcnnzoo.hookspecs`. Discovery is lazy: nothing is imported
until the first lookup, which loads the built-in plugin modules by name and
then every entry point in the ``fcnnzoo`` group.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
import importlib.metadata
import logging
import os
import threading
import warnings
from dataclasses import dataclass
from typing import Any
from typing import Final

import pluggy

from fcnnzoo import hookspecs
from fcnnzoo.specs import ArchitectureSpec
from fcnnzoo.specs import AugmenterSpec
from fcnnzoo.specs import DatasetSpec
from fcnnzoo.specs import QuantizerSpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "DuplicateNameError",
    "PluginError",
    "PluginInfo",
    "PluginWarning",
    "Registry",
    "default_registry",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP: Final = "fcnnzoo"

# Built-in plugin modules, imported by name on first use so that
# `import fcnnzoo` stays cheap and imports no plugin.
BUILTIN_PLUGINS: Final = (
    "fcnnzoo.builtin.architectures",
    "fcnnzoo.builtin.augmenters",
    "fcnnzoo.builtin.quantizers",
    "fcnnzoo.builtin.datasets",
)

# Set to 1 to turn a broken plugin from a warning into an exception.
STRICT_ENV: Final = "FCNNZOO_STRICT_PLUGINS"


@dataclass(frozen=True)
class _Kind:
    """One kind of component: its hook, its spec type and its display names."""

    hook: str
    spec_type: type
    singular: str
    plural: str


KINDS: Final = {
    "architecture": _Kind("fcnnzoo_register_architectures", ArchitectureSpec, "architecture", "models"),
    "augmenter": _Kind("fcnnzoo_register_augmenters", AugmenterSpec, "augmenter", "augmenters"),
    "quantizer": _Kind("fcnnzoo_register_quantizers", QuantizerSpec, "quantizer", "quantizers"),
    "dataset": _Kind("fcnnzoo_register_datasets", DatasetSpec, "dataset", "datasets"),
}


class PluginError(RuntimeError):
    """A plugin failed to import, register or return valid specs."""


class DuplicateNameError(ValueError):
    """Two plugins registered a component of the same kind under one name."""


class PluginWarning(UserWarning):
    """A broken plugin was skipped."""


@dataclass(frozen=True)
class PluginInfo:
    """What the registry knows about one plugin.

    ``source`` is ``"builtin"``, ``"entry point"`` or ``"runtime"``;
    ``status`` is ``"ok"`` or ``"broken"``, with ``error`` holding a one-line
    reason for a broken plugin. ``components`` lists ``kind:name`` entries.
    """

    name: str
    source: str
    status: str
    distribution: str | None = None
    version: str | None = None
    hooks: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Convert the record to plain JSON-friendly types."""
        return dataclasses.asdict(self)


def _strict_mode() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Registry:
    """A pluggy plugin manager plus the component tables built from its hooks.

    Use :func:`default_registry` for the process-wide instance; separate
    instances are useful in tests.
    """

    def __init__(self, builtin_plugins: tuple[str, ...] = BUILTIN_PLUGINS, entry_point_group: str | None = ENTRY_POINT_GROUP) -> None:
        self._builtin_plugins = builtin_plugins
        self._entry_point_group = entry_point_group
        self._lock = threading.RLock()
        self._loaded = False
        self._manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._manager.add_hookspecs(hookspecs)
        self._infos: dict[str, PluginInfo] = {}
        self._tables: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}

    # -- loading ---------------------------------------------------------

    def load(self) -> None:
        """Load the built-in plugins and then the entry-point plugins, once.

        Raises:
            PluginError: in strict mode, when a plugin is broken.
            DuplicateNameError: when two plugins register the same name.
        """
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            for module_name in self._builtin_plugins:
                self._load_module(module_name, source="builtin")
            if self._entry_point_group:
                for entry_point in importlib.metadata.entry_points(group=self._entry_point_group):
                    self._load_entry_point(entry_point)

    def _load_module(self, module_name: str, source: str) -> None:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            self._report_broken(module_name, source, exc, distribution=None, version=None)
            return
        self._add(module, module_name, source, distribution="fcnnzoo", version=_fcnnzoo_version(), strict_errors=False)

    def _load_entry_point(self, entry_point: importlib.metadata.EntryPoint) -> None:
        dist = getattr(entry_point, "dist", None)
        distribution = dist.name if dist is not None else None
        version = dist.version if dist is not None else None
        try:
            plugin = entry_point.load()
        except Exception as exc:
            self._report_broken(entry_point.name, "entry point", exc, distribution, version)
            return
        if self._manager.is_registered(plugin):
            logger.debug("Entry point %r points at an already registered plugin; skipped", entry_point.name)
            return
        self._add(plugin, entry_point.name, "entry point", distribution, version, strict_errors=False)

    def _report_broken(self, name: str, source: str, exc: BaseException, distribution: str | None, version: str | None) -> None:
        # A PluginError already names the plugin and the hook, so it is shown as it is.
        if isinstance(exc, PluginError):
            reason = " ".join(str(exc).split())
            problem = reason
        else:
            reason = _one_line(exc)
            problem = f"Plugin {name!r} failed to load: {reason}"
        self._infos[name] = PluginInfo(name=name, source=source, status="broken", distribution=distribution, version=version, error=reason)
        if _strict_mode():
            raise PluginError(f"{problem.rstrip('.')}. Fix or uninstall the plugin, or unset {STRICT_ENV} to skip it with a warning.") from exc
        message = f"Skipped a broken plugin. {problem}"
        logger.warning(message)
        warnings.warn(message, PluginWarning, stacklevel=2)

    # -- registration ----------------------------------------------------

    def _add(self, plugin: object, name: str, source: str, distribution: str | None, version: str | None, strict_errors: bool) -> None:
        """Register ``plugin`` with pluggy and merge its components.

        A plugin is added whole or not at all. With ``strict_errors`` every
        failure raises; otherwise a broken plugin is reported and skipped.
        Duplicate names always raise.
        """
        try:
            self._manager.register(plugin, name=name)
        except Exception as exc:
            if strict_errors:
                raise PluginError(f"Plugin {name!r} could not be registered: {_one_line(exc)}") from exc
            self._report_broken(name, source, exc, distribution, version)
            return

        try:
            collected, hooks = self._collect(plugin, name)
        except Exception as exc:
            self._manager.unregister(plugin)
            if strict_errors:
                raise
            self._report_broken(name, source, exc, distribution, version)
            return

        try:
            self._check_duplicates(collected, name)
        except DuplicateNameError:
            self._manager.unregister(plugin)
            raise

        for kind, specs in collected.items():
            for spec in specs:
                self._tables[kind][spec.name] = spec
        components = tuple(f"{kind}:{spec.name}" for kind, specs in collected.items() for spec in specs)
        self._infos[name] = PluginInfo(
            name=name, source=source, status="ok", distribution=distribution, version=version, hooks=hooks, components=components
        )
        logger.debug("Registered plugin %r with %d components", name, len(components))

    def _collect(self, plugin: object, plugin_name: str) -> tuple[dict[str, list[Any]], tuple[str, ...]]:
        collected: dict[str, list[Any]] = {kind: [] for kind in KINDS}
        hooks: list[str] = []
        for kind, info in KINDS.items():
            caller = getattr(self._manager.hook, info.hook)
            for impl in caller.get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                hooks.append(info.hook)
                try:
                    result = impl.function()
                except Exception as exc:
                    raise PluginError(f"Plugin {plugin_name!r} raised in hook {info.hook}: {_one_line(exc)}") from exc
                collected[kind].extend(self._validate(result, info, plugin_name))
        return collected, tuple(hooks)

    @staticmethod
    def _validate(result: object, kind: _Kind, plugin_name: str) -> list[Any]:
        if not isinstance(result, (list, tuple)):
            raise PluginError(
                f"Plugin {plugin_name!r}: hook {kind.hook} returned {type(result).__name__}; expected a list of {kind.spec_type.__name__}."
            )
        specs = []
        seen: set[str] = set()
        for item in result:
            if not isinstance(item, kind.spec_type):
                raise PluginError(
                    f"Plugin {plugin_name!r}: hook {kind.hook} returned a {type(item).__name__}; expected {kind.spec_type.__name__}."
                )
            if not item.name or item.name != item.name.strip():
                raise PluginError(f"Plugin {plugin_name!r}: {kind.singular} name {item.name!r} is empty or has surrounding spaces.")
            if item.name in seen:
                raise PluginError(f"Plugin {plugin_name!r} returned the {kind.singular} {item.name!r} twice.")
            seen.add(item.name)
            specs.append(dataclasses.replace(item, plugin=plugin_name))
        return specs

    def _check_duplicates(self, collected: dict[str, list[Any]], plugin_name: str) -> None:
        for kind, specs in collected.items():
            for spec in specs:
                existing = self._tables[kind].get(spec.name)
                if existing is not None:
                    raise DuplicateNameError(
                        f"The {KINDS[kind].singular} name {spec.name!r} is registered by both plugin {existing.plugin!r} "
                        f"and plugin {plugin_name!r}. Rename it in one plugin, or uninstall one of them."
                    )

    def register_plugin(self, plugin: object, name: str | None = None) -> str:
        """Register a plugin object at run time.

        Args:
            plugin: a module, class or instance with ``@fcnnzoo.hookimpl``
                functions.
            name: the plugin name; defaults to the module or class name.

        Returns:
            The name the plugin was registered under.

        Raises:
            PluginError: if the plugin is already registered, or its hooks
                fail or return invalid specs.
            DuplicateNameError: if one of its names is already taken.
        """
        with self._lock:
            self.load()
            if name is None:
                name = getattr(plugin, "__name__", None) or type(plugin).__name__
            if self._manager.is_registered(plugin) or self._manager.has_plugin(name):
                raise PluginError(f"Plugin {name!r} is already registered. Call unregister_plugin({name!r}) first.")
            self._add(plugin, name, "runtime", distribution=None, version=None, strict_errors=True)
            return name

    def unregister_plugin(self, plugin: object) -> None:
        """Remove a plugin, given by object or by name, and its components.

        Raises:
            ValueError: if no such plugin is registered.
        """
        with self._lock:
            self.load()
            name = plugin if isinstance(plugin, str) else self._manager.get_name(plugin)
            if name is None or not self._manager.has_plugin(name):
                raise ValueError(f"No plugin {plugin!r} is registered. Registered plugins: {', '.join(self._manager_names())}.")
            self._manager.unregister(name=name)
            for table in self._tables.values():
                for key in [key for key, spec in table.items() if spec.plugin == name]:
                    del table[key]
            self._infos.pop(name, None)

    def _manager_names(self) -> list[str]:
        return sorted(name for name, _ in self._manager.list_name_plugin())

    # -- lookup ----------------------------------------------------------

    def get(self, kind: str, name: str) -> Any:
        """Return the spec registered as ``name`` for ``kind``.

        Raises:
            ValueError: if no component of that kind has that name; the
                message lists close matches and the command that lists all.
        """
        self.load()
        info = KINDS[kind]
        table = self._tables[kind]
        if not isinstance(name, str):
            raise TypeError(f"The {info.singular} name must be a string, got {type(name).__name__}.")
        spec = table.get(name)
        if spec is not None:
            return spec
        close = difflib.get_close_matches(name, list(table), n=3)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"Unknown {info.singular} {name!r}.{hint} Run 'fcnnzoo list {info.plural}' to see the available names.")

    def specs(self, kind: str, pattern: str | None = None) -> list[Any]:
        """Return the specs of ``kind`` sorted by name, filtered by a shell-style pattern."""
        self.load()
        table = self._tables[kind]
        names = sorted(table)
        if pattern is not None:
            names = fnmatch.filter(names, pattern)
        return [table[name] for name in names]

    def plugins(self) -> list[PluginInfo]:
        """Return every known plugin, working or broken, sorted by name."""
        self.load()
        return [self._infos[name] for name in sorted(self._infos)]


def _fcnnzoo_version() -> str:
    from fcnnzoo import __version__

    return __version__


_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    """Return the process-wide registry, creating it on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Registry()
        return _default
