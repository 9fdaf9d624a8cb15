"""Plugin manager: discovery, registration and lookup of components.

Built-in components and third-party packages register the same way, through
the hooks in :mod:`fcnnzoo.hookspecs`. Discovery is lazy: nothing is imported
until the first lookup, which loads the built-in plugin modules by name and
then every entry point in the ``fcnnzoo`` group.

Every component keeps its provenance: the plugin that registered it and the
distribution and version of the package behind that plugin. Two plugins may
register the same name. Both components stay reachable under the qualified
names ``plugin:name``, and the bare name raises :class:`DuplicateNameError`,
which lists them.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import functools
import importlib
import importlib.metadata
import inspect
import logging
import os
import threading
import warnings
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from typing import Final

import pluggy

from fcnnzoo import hookspecs
from fcnnzoo.errors import DuplicateNameError
from fcnnzoo.errors import PluginError
from fcnnzoo.errors import PluginWarning
from fcnnzoo.plugin_contract import api_version_supported
from fcnnzoo.plugin_contract import check_api_version
from fcnnzoo.plugin_contract import check_hook_implementations
from fcnnzoo.plugin_contract import validate_specs
from fcnnzoo.specs import ArchitectureSpec
from fcnnzoo.specs import AugmenterSpec
from fcnnzoo.specs import DatasetSpec
from fcnnzoo.specs import QuantizerSpec

__all__ = [
    "DISABLE_ENV",
    "ENTRY_POINT_GROUP",
    "LOAD_ENV",
    "STRICT_ENV",
    "DuplicateNameError",
    "PluginError",
    "PluginInfo",
    "PluginWarning",
    "Registry",
    "default_registry",
    "replace_default_registry",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP: Final = "fcnnzoo"

# Built-in plugins, by plugin name and the module that implements its hooks.
# The modules are imported by name on first use, so that `import fcnnzoo`
# stays cheap and imports no plugin. None of them imports torch: their specs
# name the classes as "module:attribute" factory references.
BUILTIN_PLUGINS: Final = {
    "fcnnzoo.builtin.architectures": "fcnnzoo.builtin.architectures",
    # The augmenter classes live in fcnnzoo.builtin.augmenters, which imports torch.
    "fcnnzoo.builtin.augmenters": "fcnnzoo.builtin.augmenter_specs",
    "fcnnzoo.builtin.quantizers": "fcnnzoo.builtin.quantizers",
    "fcnnzoo.builtin.datasets": "fcnnzoo.builtin.datasets",
}

# Set to 1 to turn a broken or incompatible plugin from a warning into an exception.
STRICT_ENV: Final = "FCNNZOO_STRICT_PLUGINS"
# Comma-separated entry-point or distribution names: load only these third-party plugins.
LOAD_ENV: Final = "FCNNZOO_LOAD_PLUGINS"
# Comma-separated plugin or distribution names that are not loaded at all.
DISABLE_ENV: Final = "FCNNZOO_DISABLE_PLUGINS"

# Plugin statuses that `fcnnzoo list plugins` shows.
STATUS_OK: Final = "ok"
STATUS_BROKEN: Final = "broken"
STATUS_BLOCKED: Final = "blocked"
STATUS_INCOMPATIBLE: Final = "incompatible"


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


@dataclass(frozen=True)
class PluginInfo:
    """What the registry knows about one plugin.

    Attributes:
        name: the plugin name: the entry-point name, the module name of a
            built-in plugin, or the name given to ``register_plugin``.
        source: ``"builtin"``, ``"entry point"`` or ``"runtime"``.
        status: ``"ok"``, ``"broken"`` (it failed to import, register or
            return valid specs), ``"blocked"`` (by ``FCNNZOO_LOAD_PLUGINS`` or
            ``FCNNZOO_DISABLE_PLUGINS``, so never imported) or
            ``"incompatible"`` (its declared API versions exclude the host's).
        distribution: the installed package that provides the plugin, if known.
        version: that package's version.
        hooks: the hooks the plugin implements.
        components: what it registered, as ``kind:name`` entries.
        error: a one-line reason for a broken or incompatible plugin.
        reason: why a blocked plugin was not loaded.
        api_version: the hook API versions the plugin declares, if any.
        host_api_version: the hook API version of this fcnnzoo.
    """

    name: str
    source: str
    status: str
    distribution: str | None = None
    version: str | None = None
    hooks: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    error: str | None = None
    reason: str | None = None
    api_version: str | None = None
    host_api_version: str = hookspecs.API_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Convert the record to plain JSON-friendly types."""
        record = dataclasses.asdict(self)
        record["hooks"] = list(self.hooks)
        record["components"] = list(self.components)
        return record


def _strict_mode() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _env_names(variable: str) -> set[str] | None:
    """Return the comma-separated names in ``variable``, or None when it is unset."""
    value = os.environ.get(variable)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _warn(message: str) -> None:
    logger.warning(message)
    warnings.warn(message, PluginWarning, stacklevel=3)


def qualified_name(spec: Any) -> str:
    """Return ``plugin:name`` for a registered spec."""
    return f"{spec.plugin}:{spec.name}"


class Registry:
    """A pluggy plugin manager plus the component tables built from its hooks.

    Use :func:`default_registry` for the process-wide instance; separate
    instances are useful in tests.

    Args:
        builtin_plugins: the built-in plugins, loaded first: a mapping from
            plugin name to module name, or module names that are also the
            plugin names.
        entry_point_group: the entry-point group to discover third-party
            plugins in, or None for none.
    """

    def __init__(self, builtin_plugins: Mapping[str, str] | Iterable[str] = BUILTIN_PLUGINS, entry_point_group: str | None = ENTRY_POINT_GROUP) -> None:
        if isinstance(builtin_plugins, Mapping):
            self._builtin_plugins = dict(builtin_plugins)
        else:
            self._builtin_plugins = {module_name: module_name for module_name in builtin_plugins}
        self._entry_point_group = entry_point_group
        self._lock = threading.RLock()
        self._loaded = False
        self._manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._manager.add_hookspecs(hookspecs)
        self._infos: dict[str, PluginInfo] = {}
        # kind -> bare name -> plugin name -> spec, in registration order.
        self._tables: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        self._resolved: dict[Any, Any] = {}
        self._cards: dict[Any, dict[str, Any]] = {}

    # -- loading ---------------------------------------------------------

    def load(self) -> None:
        """Load the built-in plugins and then the entry-point plugins, once.

        ``FCNNZOO_DISABLE_PLUGINS`` blocks plugins by name (built-in or
        third-party) or by distribution. ``FCNNZOO_LOAD_PLUGINS``, when set,
        loads only the third-party plugins it names, and none when empty.
        Blocked plugins are listed but never imported.

        Raises:
            PluginError: in strict mode, when a plugin is broken or incompatible.
        """
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            load_only = _env_names(LOAD_ENV)
            disabled = _env_names(DISABLE_ENV) or set()
            seen_names: set[str] = set()

            for plugin_name, module_name in self._builtin_plugins.items():
                seen_names.add(plugin_name)
                if plugin_name in disabled:
                    self._block(plugin_name, "builtin", f"listed in {DISABLE_ENV}", "fcnnzoo", _fcnnzoo_version())
                    continue
                self._load_module(plugin_name, module_name)

            entry_points: Iterable[importlib.metadata.EntryPoint] = ()
            if self._entry_point_group:
                entry_points = importlib.metadata.entry_points(group=self._entry_point_group)
            for entry_point in entry_points:
                distribution, version = _distribution_of(entry_point)
                seen_names.update(name for name in (entry_point.name, distribution) if name)
                keys = {entry_point.name, distribution}
                if keys & disabled:
                    self._block(entry_point.name, "entry point", f"listed in {DISABLE_ENV}", distribution, version)
                elif load_only is not None and not keys & load_only:
                    self._block(entry_point.name, "entry point", f"not listed in {LOAD_ENV}", distribution, version)
                else:
                    self._load_entry_point(entry_point, distribution, version)

            for variable, names in ((LOAD_ENV, load_only or set()), (DISABLE_ENV, disabled)):
                unknown = sorted(names - seen_names)
                if unknown:
                    _warn(
                        f"{variable} names {', '.join(map(repr, unknown))}, which no installed plugin has. "
                        f"Installed plugins: {', '.join(sorted(self._infos)) or 'none'}. Check the spelling."
                    )

    def _block(self, name: str, source: str, reason: str, distribution: str | None, version: str | None) -> None:
        self._infos[name] = PluginInfo(name=name, source=source, status=STATUS_BLOCKED, distribution=distribution, version=version, reason=reason)
        logger.debug("Plugin %r not loaded: %s", name, reason)

    def _load_module(self, plugin_name: str, module_name: str) -> None:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            self._report_failure(plugin_name, "builtin", exc, distribution="fcnnzoo", version=_fcnnzoo_version())
            return
        self._add(module, plugin_name, "builtin", distribution="fcnnzoo", version=_fcnnzoo_version(), strict_errors=False)

    def _load_entry_point(self, entry_point: importlib.metadata.EntryPoint, distribution: str | None, version: str | None) -> None:
        if entry_point.name in self._infos:
            other = self._infos[entry_point.name]
            self._report_failure(
                entry_point.name,
                "entry point",
                PluginError(
                    f"Plugin {entry_point.name!r} from {distribution or 'an unknown distribution'} has the name of a plugin "
                    f"already loaded from {other.distribution or other.source}. Uninstall one of the two packages."
                ),
                distribution,
                version,
                record=False,
            )
            return
        try:
            plugin = entry_point.load()
        except Exception as exc:
            self._report_failure(entry_point.name, "entry point", exc, distribution, version)
            return
        if self._manager.is_registered(plugin):
            # Another entry point, or a built-in, already registered this very
            # object; registering it again would list its components twice.
            logger.debug("Entry point %r points at the already registered plugin %r; skipped", entry_point.name, self._manager.get_name(plugin))
            return
        self._add(plugin, entry_point.name, "entry point", distribution, version, strict_errors=False)

    def _report_failure(
        self,
        name: str,
        source: str,
        exc: BaseException,
        distribution: str | None,
        version: str | None,
        *,
        status: str = STATUS_BROKEN,
        api_version: str | None = None,
        record: bool = True,
        hooks: tuple[str, ...] = (),
    ) -> None:
        # A PluginError already names the plugin and what went wrong, so it is shown as it is.
        if isinstance(exc, PluginError):
            reason = " ".join(str(exc).split())
            problem = reason
        else:
            reason = _one_line(exc)
            problem = f"Plugin {name!r} failed to load: {reason}"
        if record:
            self._infos[name] = PluginInfo(
                name=name,
                source=source,
                status=status,
                distribution=distribution,
                version=version,
                hooks=hooks,
                error=reason,
                api_version=api_version,
            )
        if _strict_mode():
            raise PluginError(f"{problem.rstrip('.')}. Fix, upgrade or uninstall the plugin, or unset {STRICT_ENV} to skip it with a warning.") from exc
        article = "an" if status[0] in "aeiou" else "a"
        _warn(f"Skipped {article} {status} plugin. {problem}")

    # -- registration ----------------------------------------------------

    def _add(self, plugin: object, name: str, source: str, distribution: str | None, version: str | None, strict_errors: bool) -> None:
        """Check ``plugin``, register it with pluggy and merge its components.

        A plugin is added whole or not at all. With ``strict_errors`` every
        failure raises; otherwise a broken or incompatible plugin is
        reported and skipped.
        """

        def fail(exc: BaseException, **options: Any) -> None:
            if strict_errors:
                if isinstance(exc, PluginError):
                    raise exc
                raise PluginError(f"Plugin {name!r} could not be registered: {_one_line(exc)}") from exc
            self._report_failure(name, source, exc, distribution, version, **options)

        try:
            api_version = check_api_version(plugin, name)
        except PluginError as exc:
            fail(exc)
            return
        if api_version is not None and not api_version_supported(api_version):
            fail(
                PluginError(
                    f"Plugin {name!r} supports the fcnnzoo hook API {api_version}, but this fcnnzoo provides "
                    f"{hookspecs.API_VERSION}. Install a version of the plugin made for hook API {hookspecs.API_VERSION}."
                ),
                status=STATUS_INCOMPATIBLE,
                api_version=api_version,
            )
            return

        try:
            check_hook_implementations(self._manager, plugin, name)
            self._manager.register(plugin, name=name)
        except Exception as exc:
            fail(exc, api_version=api_version)
            return

        try:
            collected, hooks = self._collect(plugin, name, distribution, version)
        except Exception as exc:
            # A broken plugin still lists the hooks it implements.
            implemented = self._implemented_hooks(plugin)
            self._manager.unregister(plugin)
            fail(exc, api_version=api_version, hooks=implemented)
            return

        for kind, specs in collected.items():
            for spec in specs:
                self._insert(kind, spec)
        components = tuple(f"{kind}:{spec.name}" for kind, specs in collected.items() for spec in specs)
        self._infos[name] = PluginInfo(
            name=name,
            source=source,
            status=STATUS_OK,
            distribution=distribution,
            version=version,
            hooks=hooks,
            components=components,
            api_version=api_version,
        )
        logger.debug("Registered plugin %r with %d components", name, len(components))

    def _insert(self, kind: str, spec: Any) -> None:
        entries = self._tables[kind].setdefault(spec.name, {})
        entries[spec.plugin] = spec
        if len(entries) > 1:
            choices = " or ".join(repr(f"{plugin}:{spec.name}") for plugin in entries)
            logger.info(
                "The %s name %r is registered by the plugins %s; use the qualified name %s.",
                KINDS[kind].singular,
                spec.name,
                ", ".join(map(repr, entries)),
                choices,
            )

    def _implemented_hooks(self, plugin: object) -> tuple[str, ...]:
        """Return the names of the hooks that a registered ``plugin`` implements."""
        return tuple(
            info.hook
            for info in KINDS.values()
            if any(impl.plugin is plugin for impl in getattr(self._manager.hook, info.hook).get_hookimpls())
        )

    def _collect(self, plugin: object, plugin_name: str, distribution: str | None, version: str | None) -> tuple[dict[str, list[Any]], tuple[str, ...]]:
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
                specs = validate_specs(result, info.hook, info.spec_type, info.singular, plugin_name)
                collected[kind].extend(dataclasses.replace(spec, distribution=distribution, version=version) for spec in specs)
        return collected, tuple(hooks)

    def register_plugin(self, plugin: object, name: str | None = None) -> str:
        """Register a plugin object at run time.

        Registering an object that is already registered (for example a
        module that an entry point also names) does nothing and returns the
        name it is registered under.

        Args:
            plugin: a module, class or instance with ``@fcnnzoo.hookimpl``
                functions.
            name: the plugin name; defaults to the module or class name.

        Returns:
            The name the plugin is registered under.

        Raises:
            PluginError: if another plugin has that name, the plugin declares
                an API version this fcnnzoo does not provide, or its hooks
                are invalid, fail or return invalid specs.
        """
        with self._lock:
            self.load()
            if self._manager.is_registered(plugin):
                registered = self._manager.get_name(plugin)
                logger.debug("Plugin %r is already registered; nothing to do", registered)
                return registered
            if name is None:
                name = getattr(plugin, "__name__", None) or type(plugin).__name__
            if not isinstance(name, str) or not name.strip() or ":" in name:
                raise PluginError(f"Invalid plugin name {name!r}: use a non-empty string without ':'.")
            if name in self._infos and self._infos[name].status == STATUS_OK:
                raise PluginError(f"Plugin {name!r} is already registered. Call unregister_plugin({name!r}) first, or pick another name.")
            distribution, version = _distribution_of_object(plugin)
            self._add(plugin, name, "runtime", distribution=distribution, version=version, strict_errors=True)
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
                raise ValueError(f"No plugin {plugin!r} is registered. Registered plugins: {', '.join(self._manager_names()) or 'none'}.")
            self._manager.unregister(name=name)
            for table in self._tables.values():
                for bare in list(table):
                    removed = table[bare].pop(name, None)
                    if removed is not None:
                        self._forget(removed)
                    if not table[bare]:
                        del table[bare]
            self._infos.pop(name, None)

    def name_of(self, plugin: object) -> str | None:
        """Return the name ``plugin`` is registered under, or None if it is not registered."""
        self.load()
        with self._lock:
            return self._manager.get_name(plugin)

    def _forget(self, spec: Any) -> None:
        self._resolved.pop(spec, None)
        self._cards.pop(spec, None)

    def _manager_names(self) -> list[str]:
        return sorted(name for name, _ in self._manager.list_name_plugin())

    # -- lookup ----------------------------------------------------------

    def get(self, kind: str, name: str) -> Any:
        """Return the spec registered as ``name`` for ``kind``, with its factory imported.

        ``name`` is a bare name or a qualified ``plugin:name``. A factory
        given as a ``"module:attribute"`` reference is imported on the first
        lookup, so the returned spec always holds a callable.

        Raises:
            TypeError: if ``name`` is not a string.
            ValueError: if no component of that kind has that name; the
                message lists close matches and the command that lists all.
            DuplicateNameError: if a bare name belongs to several plugins;
                the message lists the qualified names.
            PluginError: if the factory reference cannot be imported.
        """
        self.load()
        info = KINDS[kind]
        if not isinstance(name, str):
            raise TypeError(f"The {info.singular} name must be a string, got {type(name).__name__}.")
        with self._lock:
            spec = self._find(kind, name)
            return self._resolve(spec, info)

    def _find(self, kind: str, name: str) -> Any:
        info = KINDS[kind]
        table = self._tables[kind]
        plugin, separator, bare = name.rpartition(":")
        if separator:
            spec = table.get(bare, {}).get(plugin)
            if spec is not None:
                return spec
            owners = list(table.get(bare, {}))
            if owners:
                choices = ", ".join(repr(f"{owner}:{bare}") for owner in owners)
                raise ValueError(f"Plugin {plugin!r} registers no {info.singular} {bare!r}. Registered as: {choices}.")
            raise ValueError(f"Unknown {info.singular} {name!r}. Run 'fcnnzoo list {info.plural}' to see the available names.")

        entries = table.get(name)
        if entries and len(entries) == 1:
            return next(iter(entries.values()))
        if entries:
            owners = sorted(entries)
            choices = " or ".join(repr(f"{owner}:{name}") for owner in owners)
            raise DuplicateNameError(
                f"The {info.singular} name {name!r} is registered by {len(entries)} plugins "
                f"({', '.join(map(repr, owners))}). Use a qualified name: {choices}."
            )
        close = difflib.get_close_matches(name, list(table), n=3)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"Unknown {info.singular} {name!r}.{hint}{self._unloaded_hint()} "
            f"Run 'fcnnzoo list {info.plural}' to see the available names."
        )

    def _unloaded_hint(self) -> str:
        """Name the plugins that did not load, since a missing name may be theirs."""
        unloaded = [plugin for plugin in self._infos.values() if plugin.status != STATUS_OK]
        if not unloaded:
            return ""
        described = ", ".join(f"{plugin.name!r} ({plugin.status}: {plugin.reason or plugin.error})" for plugin in unloaded)
        return f" Plugins that did not load, and may provide it: {described}."

    def _resolve(self, spec: Any, info: _Kind) -> Any:
        if not isinstance(spec.factory, str):
            return spec
        resolved = self._resolved.get(spec)
        if resolved is not None:
            return resolved
        module_name, _, attribute_path = spec.factory.partition(":")
        try:
            target: Any = importlib.import_module(module_name)
            for attribute in attribute_path.split("."):
                target = getattr(target, attribute)
        except Exception as exc:
            raise PluginError(
                f"The {info.singular} {spec.name!r} of plugin {spec.plugin!r} names the factory {spec.factory!r}, "
                f"which could not be imported: {_one_line(exc)}. Reinstall or fix the plugin."
            ) from exc
        if not callable(target):
            raise PluginError(
                f"The {info.singular} {spec.name!r} of plugin {spec.plugin!r} names the factory {spec.factory!r}, "
                f"which is a {type(target).__name__}, not a callable."
            )
        resolved = dataclasses.replace(spec, factory=target)
        self._resolved[spec] = resolved
        return resolved

    def specs(self, kind: str, pattern: str | None = None, plugin: str | None = None) -> list[Any]:
        """Return the specs of ``kind`` sorted by name and then plugin.

        Args:
            kind: ``"architecture"``, ``"augmenter"``, ``"quantizer"`` or ``"dataset"``.
            pattern: a shell-style pattern that the bare name must match,
                such as ``"resnet*"``. A pattern with a ``:``, such as
                ``"resnet:*"``, is matched against the qualified name.
            plugin: keep only the components of the plugin with this name.

        Returns:
            The specs as registered; a factory may still be a reference.
        """
        self.load()
        with self._lock:
            specs = [spec for _, entries in sorted(self._tables[kind].items()) for _, spec in sorted(entries.items())]
        if plugin is not None:
            specs = [spec for spec in specs if spec.plugin == plugin]
        if pattern is not None:
            key = qualified_name if ":" in pattern else (lambda spec: spec.name)
            specs = [spec for spec in specs if fnmatch.fnmatchcase(key(spec), pattern)]
        return specs

    def display_name(self, kind: str, spec: Any) -> str:
        """Return the name that selects ``spec``: the bare name if it is unique, else ``plugin:name``."""
        with self._lock:
            entries = self._tables[kind].get(spec.name, {})
        return spec.name if len(entries) <= 1 else qualified_name(spec)

    def plugins(self) -> list[PluginInfo]:
        """Return every known plugin, loaded, broken, blocked or incompatible, sorted by name."""
        self.load()
        with self._lock:
            return [self._infos[name] for name in sorted(self._infos)]

    def cached_card(self, spec: Any, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Return the model card of ``spec``, calling ``compute`` only the first time.

        The cache entry goes away when the plugin that registered ``spec`` is
        unregistered.
        """
        with self._lock:
            card = self._cards.get(spec)
        if card is None:
            card = compute()
            with self._lock:
                self._cards[spec] = card
        return dict(card)


def _distribution_of(entry_point: importlib.metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return None, None
    return dist.name, dist.version


def _distribution_of_object(plugin: object) -> tuple[str | None, str | None]:
    """Find the installed distribution whose top-level package contains ``plugin``, if any."""
    if inspect.ismodule(plugin):
        module = plugin
    elif inspect.isclass(plugin):
        module = inspect.getmodule(plugin)
    else:
        module = inspect.getmodule(type(plugin))
    if module is None:
        return None, None
    top_level = module.__name__.partition(".")[0]
    if top_level == "fcnnzoo":
        return "fcnnzoo", _fcnnzoo_version()
    # A distribution can be listed twice, once from its files and once from top_level.txt.
    names = sorted(set(_packages_distributions().get(top_level, [])))
    if len(names) != 1:
        return None, None
    try:
        return names[0], importlib.metadata.version(names[0])
    except importlib.metadata.PackageNotFoundError:
        return None, None


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    # Reading every installed package's file list is slow, so it is read once per process.
    return importlib.metadata.packages_distributions()


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


def replace_default_registry(registry: Registry | None) -> Registry | None:
    """Make ``registry`` the process-wide registry and return the previous one.

    None makes the next :func:`default_registry` call create a fresh one.
    :func:`fcnnzoo.testing.isolated_registry` uses this to give a test its
    own registry.
    """
    global _default
    with _default_lock:
        previous = _default
        _default = registry
        return previous
