"""Tests of plugin status, provenance, API versions, environment settings and bad plugins."""

from __future__ import annotations

import importlib.metadata
import textwrap
import uuid
from pathlib import Path

import pytest

import fcnnzoo
from fcnnzoo import hookspecs
from fcnnzoo.builtin import quantizers as builtin_quantizers
from fcnnzoo.registry import PluginError
from fcnnzoo.registry import PluginWarning
from fcnnzoo.registry import Registry
from fcnnzoo.specs import ArchitectureSpec
from fcnnzoo.specs import AugmenterSpec
from fcnnzoo.specs import DatasetSpec
from fcnnzoo.specs import QuantizerSpec
from fcnnzoo.testing import isolated_registry

GROUP = "test_fcnnzoo_plugins_group"
# Names that the built-in quantizers module registers, in the registry's sorted order.
BUILTIN_QUANTIZERS = sorted(spec.name for spec in builtin_quantizers.fcnnzoo_register_quantizers())

HOOKS = {
    "fcnnzoo_register_architectures": ("architecture", ArchitectureSpec),
    "fcnnzoo_register_augmenters": ("augmenter", AugmenterSpec),
    "fcnnzoo_register_quantizers": ("quantizer", QuantizerSpec),
    "fcnnzoo_register_datasets": ("dataset", DatasetSpec),
}

GOOD_PLUGIN = """
    import fcnnzoo

    @fcnnzoo.hookimpl
    def fcnnzoo_register_architectures():
        return [fcnnzoo.ArchitectureSpec(name="{arch}", factory="{module}_models:build", description="from {module}")]
"""


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A folder on sys.path for fake plugin modules and distributions."""
    monkeypatch.syspath_prepend(str(tmp_path))
    for variable in ("FCNNZOO_STRICT_PLUGINS", "FCNNZOO_LOAD_PLUGINS", "FCNNZOO_DISABLE_PLUGINS"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path


def write_module(directory: Path, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(source))


def install_distribution(directory: Path, dist_name: str, entry_points: dict[str, str], version: str = "1.2.3") -> None:
    """Write a minimal ``.dist-info`` so importlib.metadata finds an installed distribution."""
    info = directory / f"{dist_name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
    lines = [f"[{GROUP}]"] + [f"{name} = {target}" for name, target in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def good_plugin(directory: Path, arch: str) -> str:
    module = _unique("plugin")
    write_module(directory, module, GOOD_PLUGIN.format(arch=arch, module=module))
    return module


def registry_for_group() -> Registry:
    return Registry(builtin_plugins=(), entry_point_group=GROUP)


def infos_of(registry: Registry) -> dict[str, fcnnzoo.PluginInfo]:
    return {info.name: info for info in registry.plugins()}


# -- provenance ------------------------------------------------------------------


def test_builtin_specs_carry_fcnnzoo_provenance():
    registry = fcnnzoo.registry.default_registry()
    for kind in ("architecture", "augmenter", "quantizer", "dataset"):
        for spec in registry.specs(kind, plugin=None):
            if spec.plugin.startswith("fcnnzoo.builtin."):
                assert spec.distribution == "fcnnzoo", spec
                assert spec.version == fcnnzoo.__version__, spec


def test_entry_point_specs_carry_distribution(plugin_dir):
    module = good_plugin(plugin_dir, "provenance_arch")
    install_distribution(plugin_dir, "fcnnzoo-provenance", {"prov": module}, version="4.5.6")

    spec = registry_for_group().specs("architecture")[0]
    assert spec.plugin == "prov"
    assert spec.distribution == "fcnnzoo-provenance"
    assert spec.version == "4.5.6"


def test_installed_plugins_carry_distribution():
    spec = fcnnzoo.registry.default_registry().get("architecture", "resnet8")
    assert spec.plugin == "resnet"
    assert spec.distribution == "fcnnzoo-resnet"
    assert spec.version == importlib.metadata.version("fcnnzoo-resnet")


def test_runtime_plugin_from_package_gets_distribution():
    import fcnnzoo_tinyvgg

    with isolated_registry(builtins=False) as registry:
        registry.register_plugin(fcnnzoo_tinyvgg, name="tiny-again")
        spec = registry.get("architecture", "tiny_vgg")
    assert spec.distribution == "fcnnzoo-tinyvgg"
    assert spec.version == fcnnzoo_tinyvgg.__version__


def test_list_models_filters_by_plugin():
    assert fcnnzoo.list_models(plugin="resnet") == ["resnet14", "resnet20", "resnet8"]
    assert fcnnzoo.list_models("resnet1*", plugin="resnet") == ["resnet14"]
    assert fcnnzoo.list_models(plugin="tinyvgg") == ["tiny_vgg"]
    assert fcnnzoo.list_models(plugin="no-such-plugin") == []
    assert fcnnzoo.list_augmenters(plugin="fcnnzoo.builtin.augmenters") == fcnnzoo.list_augmenters()
    assert fcnnzoo.list_quantizers(plugin="resnet") == []


def test_list_models_qualified_pattern():
    assert fcnnzoo.list_models("resnet:*") == ["resnet14", "resnet20", "resnet8"]
    assert fcnnzoo.list_models("fcnn*") == ["fcnn"]


# -- the same plugin twice -----------------------------------------------------------


def test_entry_point_to_registered_builtin_listed_once(plugin_dir):
    install_distribution(plugin_dir, "fcnnzoo-alias", {"alias": "fcnnzoo.builtin.quantizers"})

    registry = Registry(builtin_plugins=("fcnnzoo.builtin.quantizers",), entry_point_group=GROUP)
    assert [spec.name for spec in registry.specs("quantizer")] == BUILTIN_QUANTIZERS
    assert list(infos_of(registry)) == ["fcnnzoo.builtin.quantizers"]


def test_two_entry_points_to_one_module_listed_once(plugin_dir):
    module = good_plugin(plugin_dir, "once_only")
    install_distribution(plugin_dir, "fcnnzoo-twice", {"first": module, "second": module})

    registry = registry_for_group()
    assert [spec.name for spec in registry.specs("architecture")] == ["once_only"]
    assert registry.specs("architecture")[0].plugin == "first"
    assert list(infos_of(registry)) == ["first"]


# -- load and disable settings -------------------------------------------------------


def test_load_plugins_env_loads_only_named(plugin_dir, monkeypatch):
    kept = good_plugin(plugin_dir, "kept_arch")
    skipped = good_plugin(plugin_dir, "skipped_arch")
    install_distribution(plugin_dir, "fcnnzoo-kept", {"kept": kept})
    install_distribution(plugin_dir, "fcnnzoo-skipped", {"skipped": skipped})
    monkeypatch.setenv("FCNNZOO_LOAD_PLUGINS", "kept")

    registry = registry_for_group()
    assert [spec.name for spec in registry.specs("architecture")] == ["kept_arch"]
    infos = infos_of(registry)
    assert infos["kept"].status == "ok"
    assert infos["skipped"].status == "blocked"
    assert infos["skipped"].reason == "not listed in FCNNZOO_LOAD_PLUGINS"
    assert infos["skipped"].distribution == "fcnnzoo-skipped"
    assert infos["skipped"].components == ()


def test_load_plugins_env_accepts_distribution_name(plugin_dir, monkeypatch):
    module = good_plugin(plugin_dir, "by_dist")
    install_distribution(plugin_dir, "fcnnzoo-by-dist", {"bydist": module})
    monkeypatch.setenv("FCNNZOO_LOAD_PLUGINS", " fcnnzoo-by-dist , ")

    assert [spec.name for spec in registry_for_group().specs("architecture")] == ["by_dist"]


def test_empty_load_plugins_env_loads_none(plugin_dir, monkeypatch):
    module = good_plugin(plugin_dir, "never_loaded")
    install_distribution(plugin_dir, "fcnnzoo-none", {"none": module})
    monkeypatch.setenv("FCNNZOO_LOAD_PLUGINS", "")

    registry = Registry(builtin_plugins=("fcnnzoo.builtin.architectures",), entry_point_group=GROUP)
    assert "never_loaded" not in [spec.name for spec in registry.specs("architecture")]
    assert "fcnn" in [spec.name for spec in registry.specs("architecture")]
    assert infos_of(registry)["none"].status == "blocked"
    assert module not in __import__("sys").modules
    with pytest.raises(ValueError, match=r"Unknown architecture 'never_loaded'\..*'none' \(blocked: not listed in FCNNZOO_LOAD_PLUGINS\)"):
        registry.get("architecture", "never_loaded")


def test_disable_plugins_env_blocks_without_import(plugin_dir, monkeypatch):
    import sys

    blocked = good_plugin(plugin_dir, "blocked_arch")
    install_distribution(plugin_dir, "fcnnzoo-blocked", {"blocked": blocked})
    monkeypatch.setenv("FCNNZOO_DISABLE_PLUGINS", "blocked,fcnnzoo.builtin.quantizers")

    registry = Registry(builtin_plugins=("fcnnzoo.builtin.quantizers", "fcnnzoo.builtin.architectures"), entry_point_group=GROUP)
    assert registry.specs("quantizer") == []
    assert "blocked_arch" not in [spec.name for spec in registry.specs("architecture")]
    infos = infos_of(registry)
    assert infos["blocked"].status == "blocked"
    assert infos["blocked"].reason == "listed in FCNNZOO_DISABLE_PLUGINS"
    assert infos["fcnnzoo.builtin.quantizers"].status == "blocked"
    assert blocked not in sys.modules


def test_disable_wins_over_load(plugin_dir, monkeypatch):
    module = good_plugin(plugin_dir, "both_lists")
    install_distribution(plugin_dir, "fcnnzoo-both", {"both": module})
    monkeypatch.setenv("FCNNZOO_LOAD_PLUGINS", "both")
    monkeypatch.setenv("FCNNZOO_DISABLE_PLUGINS", "both")

    registry = registry_for_group()
    assert registry.specs("architecture") == []
    assert infos_of(registry)["both"].reason == "listed in FCNNZOO_DISABLE_PLUGINS"


def test_unknown_name_in_env_warns(plugin_dir, monkeypatch):
    module = good_plugin(plugin_dir, "known_arch")
    install_distribution(plugin_dir, "fcnnzoo-known", {"known": module})
    monkeypatch.setenv("FCNNZOO_DISABLE_PLUGINS", "knwon")

    with pytest.warns(PluginWarning, match=r"FCNNZOO_DISABLE_PLUGINS names 'knwon', which no installed plugin has\. Installed plugins: known\."):
        registry_for_group().load()


# -- API versions ------------------------------------------------------------------


@pytest.mark.parametrize("specifier", [">=1.0,<2", "~=1.0", ">=0.5", "==1.*"])
def test_compatible_api_version_loads(plugin_dir, specifier):
    module = _unique("compatible")
    write_module(plugin_dir, module, f"FCNNZOO_API_VERSION = {specifier!r}\n" + textwrap.dedent(GOOD_PLUGIN.format(arch="compatible", module=module)))
    install_distribution(plugin_dir, "fcnnzoo-compatible", {"compatible": module})

    registry = registry_for_group()
    assert [spec.name for spec in registry.specs("architecture")] == ["compatible"]
    assert infos_of(registry)["compatible"].api_version == specifier


def test_incompatible_api_version_not_loaded(plugin_dir):
    module = _unique("incompatible")
    write_module(plugin_dir, module, "FCNNZOO_API_VERSION = '>=2.0'\n" + textwrap.dedent(GOOD_PLUGIN.format(arch="future", module=module)))
    install_distribution(plugin_dir, "fcnnzoo-future", {"future": module})

    registry = registry_for_group()
    with pytest.warns(PluginWarning, match="Skipped an incompatible plugin"):
        assert registry.specs("architecture") == []
    info = infos_of(registry)["future"]
    assert info.status == "incompatible"
    assert info.api_version == ">=2.0"
    assert info.host_api_version == hookspecs.API_VERSION
    assert f"supports the fcnnzoo hook API >=2.0, but this fcnnzoo provides {hookspecs.API_VERSION}" in info.error


def test_invalid_api_version_is_broken(plugin_dir):
    module = _unique("badversion")
    write_module(plugin_dir, module, "FCNNZOO_API_VERSION = 'one point oh'\n" + textwrap.dedent(GOOD_PLUGIN.format(arch="x", module=module)))
    install_distribution(plugin_dir, "fcnnzoo-badversion", {"badversion": module})

    registry = registry_for_group()
    with pytest.warns(PluginWarning):
        registry.load()
    info = infos_of(registry)["badversion"]
    assert info.status == "broken"
    assert "FCNNZOO_API_VERSION = 'one point oh', which is not a version specifier" in info.error


def test_incompatible_runtime_plugin_raises():
    class Future:
        FCNNZOO_API_VERSION = ">=3"

        @fcnnzoo.hookimpl
        def fcnnzoo_register_architectures(self):
            return []

    with pytest.raises(PluginError, match=r"'future' supports the fcnnzoo hook API >=3"):
        fcnnzoo.register_plugin(Future(), name="future")


def test_strict_mode_raises_for_incompatible(plugin_dir, monkeypatch):
    module = _unique("strict_future")
    write_module(plugin_dir, module, "FCNNZOO_API_VERSION = '<1'\n" + textwrap.dedent(GOOD_PLUGIN.format(arch="old", module=module)))
    install_distribution(plugin_dir, "fcnnzoo-old", {"old": module})
    monkeypatch.setenv("FCNNZOO_STRICT_PLUGINS", "1")

    with pytest.raises(PluginError, match="'old' supports the fcnnzoo hook API <1"):
        registry_for_group().load()


# -- bad plugins: each is reported with its name and the rest keeps working -------------


def _bad_plugin_registry(plugin_dir: Path, body: str) -> tuple[Registry, fcnnzoo.PluginInfo]:
    """Install a broken plugin ``bad`` next to a good one and load them."""
    good = good_plugin(plugin_dir, "healthy")
    bad = _unique("bad")
    write_module(plugin_dir, bad, "import fcnnzoo\n" + textwrap.dedent(body))
    install_distribution(plugin_dir, "fcnnzoo-mixed", {"good": good, "bad": bad})

    registry = Registry(builtin_plugins=("fcnnzoo.builtin.quantizers",), entry_point_group=GROUP)
    with pytest.warns(PluginWarning, match="Skipped a broken plugin"):
        registry.load()
    assert [spec.name for spec in registry.specs("architecture")] == ["healthy"]
    assert [spec.name for spec in registry.specs("quantizer")] == BUILTIN_QUANTIZERS
    infos = infos_of(registry)
    assert infos["good"].status == "ok"
    assert infos["bad"].status == "broken"
    assert infos["bad"].components == ()
    return registry, infos["bad"]


@pytest.mark.parametrize("hook", list(HOOKS))
def test_hook_that_raises(plugin_dir, hook):
    body = f"""
    @fcnnzoo.hookimpl
    def {hook}():
        raise RuntimeError("table is corrupt")
    """
    _, info = _bad_plugin_registry(plugin_dir, body)
    assert info.error == f"Plugin 'bad' raised in hook {hook}: RuntimeError: table is corrupt"


@pytest.mark.parametrize("hook", list(HOOKS))
@pytest.mark.parametrize(("returned", "described"), [("None", "NoneType"), ("{'a': 1}", "dict"), ("'name'", "str")])
def test_hook_that_returns_wrong_type(plugin_dir, hook, returned, described):
    body = f"""
    @fcnnzoo.hookimpl
    def {hook}():
        return {returned}
    """
    _, info = _bad_plugin_registry(plugin_dir, body)
    spec_type = HOOKS[hook][1].__name__
    assert info.error == f"Plugin 'bad': hook {hook} returned {described}; expected a list of {spec_type}."


def test_hook_list_with_wrong_item_type(plugin_dir):
    body = """
    @fcnnzoo.hookimpl
    def fcnnzoo_register_quantizers():
        return [fcnnzoo.AugmenterSpec(name="misfiled", factory=print, description="x")]
    """
    _, info = _bad_plugin_registry(plugin_dir, body)
    assert info.error == "Plugin 'bad': hook fcnnzoo_register_quantizers returned a AugmenterSpec; expected QuantizerSpec."


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "with an empty name"),
        ("my model", "which contains whitespace"),
        (" padded", "which contains whitespace"),
        ("tab\\tname", "which contains whitespace"),
        ("vendor:model", "which contains ':'"),
    ],
)
def test_invalid_component_name(plugin_dir, name, problem):
    body = f"""
    @fcnnzoo.hookimpl
    def fcnnzoo_register_augmenters():
        return [fcnnzoo.AugmenterSpec(name="{name}", factory=print, description="x")]
    """
    _, info = _bad_plugin_registry(plugin_dir, body)
    assert info.error.startswith("Plugin 'bad' registered ")
    assert problem in info.error


def test_component_name_not_a_string(plugin_dir):
    body = """
    @fcnnzoo.hookimpl
    def fcnnzoo_register_augmenters():
        return [fcnnzoo.AugmenterSpec(name=42, factory=print, description="x")]
    """
    _, info = _bad_plugin_registry(plugin_dir, body)
    assert info.error == "Plugin 'bad' registered an augmenter whose name is an int, not a string."


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ("in_channels=0", "declares in_channels=0; expected a positive integer"),
        ("num_classes=True", "declares num_classes=True; expected a positive integer"),
        ("input_size=(28,)", "declares input_size=(28,); expected (height, width)"),
        ("input_size=(28, 28), min_input_size=(32, 8)", "min_input_size=(32, 8), which is larger than its input_size=(28, 28)"),
        ("tags='fast'", "declares tags='fast'; expected a tuple of strings"),
        ("factory='not a reference'", "is 'not a reference', which is not a 'package.module:attribute' reference"),
        ("factory=42", "is a int; expected a callable"),
    ],
)
def test_invalid_architecture_fields(plugin_dir, fields, problem):
    factory = "" if "factory=" in fields else "factory=print, "
    body = f"""
    @fcnnzoo.hookimpl
    def fcnnzoo_register_architectures():
        return [fcnnzoo.ArchitectureSpec(name="odd", {factory}description="x", {fields})]
    """
    _, info = _bad_plugin_registry(plugin_dir, body)
    assert problem in info.error
    assert "'bad'" in info.error


def test_same_name_twice_in_one_plugin(plugin_dir):
    body = """
    @fcnnzoo.hookimpl
    def fcnnzoo_register_augmenters():
        return [fcnnzoo.AugmenterSpec(name="dup", factory=print, description="x")] * 2
    """
    _, info = _bad_plugin_registry(plugin_dir, body)
    assert info.error == "Plugin 'bad' returned the augmenter 'dup' twice."


def test_wrong_hook_signature_names_argument(plugin_dir):
    body = """
    @fcnnzoo.hookimpl
    def fcnnzoo_register_datasets(config):
        return []
    """
    _, info = _bad_plugin_registry(plugin_dir, body)
    assert info.error == (
        "Plugin 'bad': hook fcnnzoo_register_datasets takes the argument 'config', which the hook spec "
        "fcnnzoo_register_datasets() does not provide. Remove the argument."
    )


def test_misspelled_hook_suggests_name(plugin_dir):
    body = """
    @fcnnzoo.hookimpl
    def fcnnzoo_register_architecture():
        return []
    """
    _, info = _bad_plugin_registry(plugin_dir, body)
    assert info.error == (
        "Plugin 'bad' implements 'fcnnzoo_register_architecture', which is not an fcnnzoo hook. "
        "Did you mean 'fcnnzoo_register_architectures'?"
    )


def test_optional_unknown_hook_allowed():
    class Optional:
        @fcnnzoo.hookimpl(optionalhook=True)
        def fcnnzoo_register_losses(self):
            return []

    with isolated_registry(builtins=False) as registry:
        assert registry.register_plugin(Optional(), name="optional") == "optional"
        assert infos_of(registry)["optional"].status == "ok"


def test_import_error_is_broken(plugin_dir):
    _, info = _bad_plugin_registry(plugin_dir, "import fcnnzoo_no_such_dependency\n")
    assert info.error == "ModuleNotFoundError: No module named 'fcnnzoo_no_such_dependency'"


# -- factories that fail ---------------------------------------------------------------


class CrashingFactories:
    """Registers components whose factories fail in different ways."""

    @fcnnzoo.hookimpl
    def fcnnzoo_register_architectures(self):
        def crash(in_channels, num_classes):
            raise ZeroDivisionError("division by zero in layer sizes")

        def not_a_module(in_channels, num_classes):
            return "a string"

        return [
            ArchitectureSpec(name="crashes", factory=crash, description="raises"),
            ArchitectureSpec(name="builds_string", factory=not_a_module, description="returns a str"),
            ArchitectureSpec(name="missing_module", factory="fcnnzoo_no_such_module:build", description="bad reference"),
            ArchitectureSpec(name="missing_attribute", factory="fcnnzoo.models:NoSuchModel", description="bad reference"),
            ArchitectureSpec(name="not_callable", factory="fcnnzoo.hookspecs:API_VERSION", description="bad reference"),
        ]

    @fcnnzoo.hookimpl
    def fcnnzoo_register_augmenters(self):
        def crash():
            raise OSError("lookup table missing")

        return [AugmenterSpec(name="crashing_augmenter", factory=crash, description="raises")]


@pytest.fixture
def crashing(fcnnzoo_plugin):
    return fcnnzoo_plugin(CrashingFactories(), name="crashing")


def test_crashing_factory_attributed(crashing):
    with pytest.raises(PluginError, match=r"The architecture 'crashes' of plugin 'crashing' failed to build: ZeroDivisionError: division by zero in layer sizes\. This is a defect in the plugin"):
        fcnnzoo.create_model("crashes")
    with pytest.raises(PluginError, match=r"The augmenter 'crashing_augmenter' of plugin 'crashing' failed to build: OSError: lookup table missing"):
        fcnnzoo.create_augmenter("crashing_augmenter")
    assert type(fcnnzoo.create_model("fcnn")).__name__ == "FCNN"
    assert "crashes" in fcnnzoo.list_models()


def test_factory_returning_non_module(crashing):
    with pytest.raises(PluginError, match=r"The architecture 'builds_string' of plugin 'crashing' built a str; expected a torch\.nn\.Module\."):
        fcnnzoo.create_model("builds_string")


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("missing_module", "ModuleNotFoundError: No module named 'fcnnzoo_no_such_module'"),
        ("missing_attribute", "AttributeError"),
        ("not_callable", "which is a str, not a callable"),
    ],
)
def test_bad_factory_reference(crashing, name, problem):
    with pytest.raises(PluginError) as excinfo:
        fcnnzoo.create_model(name)
    message = str(excinfo.value)
    assert f"The architecture {name!r} of plugin 'crashing' names the factory" in message
    assert problem in message
    assert fcnnzoo.model_info("lenet5")["name"] == "lenet5"


def test_factory_reference_imported_on_first_lookup(plugin_dir):
    module = _unique("lazy_models")
    write_module(plugin_dir, module, "import fcnnzoo.models\nbuild = fcnnzoo.models.LeNet5\n")
    plugin = _unique("lazy_hooks")
    write_module(
        plugin_dir,
        plugin,
        f"""
        import fcnnzoo

        @fcnnzoo.hookimpl
        def fcnnzoo_register_architectures():
            return [fcnnzoo.ArchitectureSpec(name="lazy_lenet", factory="{module}:build", description="lazy")]
        """,
    )
    install_distribution(plugin_dir, "fcnnzoo-lazy-factory", {"lazy": plugin})

    import sys

    registry = registry_for_group()
    assert registry.specs("architecture")[0].factory == f"{module}:build"
    assert module not in sys.modules
    assert registry.get("architecture", "lazy_lenet").factory is sys.modules[module].build


# -- the fixture and context managers ---------------------------------------------------


class OneModel:
    @fcnnzoo.hookimpl
    def fcnnzoo_register_architectures(self):
        return [ArchitectureSpec(name="scoped_model", factory="fcnnzoo.models.lenet:LeNet5", description="scoped")]


def test_fixture_registers_for_one_test(fcnnzoo_plugin):
    assert fcnnzoo_plugin(OneModel(), name="scoped") == "scoped"
    assert "scoped_model" in fcnnzoo.list_models()


def test_fixture_unregisters_after_test():
    assert "scoped_model" not in fcnnzoo.list_models()
    assert "scoped" not in {info.name for info in fcnnzoo.list_plugins()}


def test_registered_plugin_unregisters_on_error():
    from fcnnzoo.testing import registered_plugin

    with pytest.raises(KeyError):
        with registered_plugin(OneModel(), name="scoped-error"):
            assert "scoped_model" in fcnnzoo.list_models()
            raise KeyError("test body failed")
    assert "scoped_model" not in fcnnzoo.list_models()


def test_registered_plugin_keeps_prior_registration():
    from fcnnzoo.testing import registered_plugin

    plugin = OneModel()
    fcnnzoo.register_plugin(plugin, name="prior")
    try:
        with registered_plugin(plugin) as name:
            assert name == "prior"
        assert "scoped_model" in fcnnzoo.list_models()
    finally:
        fcnnzoo.unregister_plugin("prior")


def test_isolated_registry_restores_default():
    before = fcnnzoo.registry.default_registry()
    with isolated_registry(builtins=False) as registry:
        assert fcnnzoo.registry.default_registry() is registry
        assert fcnnzoo.list_models() == []
    assert fcnnzoo.registry.default_registry() is before
    assert "fcnn" in fcnnzoo.list_models()
