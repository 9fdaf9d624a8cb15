"""Tests of plugin discovery, registration and lookup."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
import warnings
from pathlib import Path

import pytest

import fcnnzoo
from fcnnzoo.registry import DuplicateNameError
from fcnnzoo.registry import PluginError
from fcnnzoo.registry import PluginWarning
from fcnnzoo.registry import Registry
from fcnnzoo.specs import ArchitectureSpec
from fcnnzoo.specs import AugmenterSpec


def _tiny_model(in_channels: int, num_classes: int):
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))


class ArchitecturePlugin:
    """A run-time plugin that registers one architecture under a chosen name."""

    def __init__(self, *names: str) -> None:
        self.names = names

    @fcnnzoo.hookimpl
    def fcnnzoo_register_architectures(self):
        return [ArchitectureSpec(name=name, factory=_tiny_model, description=f"test model {name}") for name in self.names]


class RaisingPlugin:
    @fcnnzoo.hookimpl
    def fcnnzoo_register_augmenters(self):
        raise RuntimeError("augmenter table is corrupt")


def _write_module(directory: Path, name: str, source: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(source))


def _install_fake_distribution(directory: Path, dist_name: str, entry_points: dict[str, str]) -> None:
    """Write a minimal ``.dist-info`` so importlib.metadata finds an installed distribution."""
    info = directory / f"{dist_name.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 1.2.3\n")
    lines = ["[test_fcnnzoo_group]"] + [f"{name} = {target}" for name, target in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


GOOD_PLUGIN = """
    import fcnnzoo

    @fcnnzoo.hookimpl
    def fcnnzoo_register_architectures():
        return [fcnnzoo.ArchitectureSpec(name="{arch}", factory=lambda in_channels, num_classes: None, description="from {module}")]
"""


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


# -- built-ins and lookup ----------------------------------------------------


def test_import_loads_no_plugin_and_no_torch():
    code = "import sys, fcnnzoo; print(any(m.startswith('fcnnzoo.builtin.') for m in sys.modules), 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_builtins_listed():
    assert {"fcnn", "lenet5", "allconv"} <= set(fcnnzoo.list_models())
    assert {"random_crop", "hflip", "gaussian_noise"} <= set(fcnnzoo.list_augmenters())
    assert "int8_weight_only" in fcnnzoo.list_quantizers()
    assert "digits" in fcnnzoo.list_datasets()


def test_builtins_report_their_plugin():
    infos = {info.name: info for info in fcnnzoo.list_plugins()}
    architectures = infos["fcnnzoo.builtin.architectures"]
    assert architectures.status == "ok"
    assert architectures.source == "builtin"
    assert architectures.distribution == "fcnnzoo"
    assert "architecture:fcnn" in architectures.components


def test_list_models_pattern():
    assert fcnnzoo.list_models("fcnn*") == ["fcnn"]
    assert fcnnzoo.list_models("no_such_*") == []


def test_create_model_output_shape():
    import torch

    model = fcnnzoo.create_model("fcnn", num_classes=5).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 5)
    assert model.fcnnzoo_config["architecture"] == "fcnn"
    assert model.fcnnzoo_config["arguments"]["num_classes"] == 5


def test_unknown_name_suggests_close_match():
    with pytest.raises(ValueError, match=r"Unknown architecture 'fcn'\. Did you mean 'fcnn'\?"):
        fcnnzoo.create_model("fcn")
    with pytest.raises(ValueError, match="fcnnzoo list augmenters"):
        fcnnzoo.create_augmenter("no_such_augmenter")


def test_model_info_counts_parameters():
    import torch

    info = fcnnzoo.model_info("fcnn")
    model = fcnnzoo.create_model("fcnn")
    assert info["params"] == sum(p.numel() for p in model.parameters())
    assert info["plugin"] == "fcnnzoo.builtin.architectures"
    assert info["input_size"] == [28, 28]
    assert isinstance(model, torch.nn.Module)


# -- run-time registration ---------------------------------------------------


def test_register_and_unregister_at_runtime():
    name = _unique("runtime_model")
    plugin = ArchitecturePlugin(name)
    plugin_name = fcnnzoo.register_plugin(plugin, name="runtime-test")
    try:
        assert plugin_name == "runtime-test"
        assert name in fcnnzoo.list_models()
        info = {p.name: p for p in fcnnzoo.list_plugins()}["runtime-test"]
        assert info.source == "runtime"
        assert info.components == (f"architecture:{name}",)
    finally:
        fcnnzoo.unregister_plugin("runtime-test")
    assert name not in fcnnzoo.list_models()
    assert "runtime-test" not in {p.name for p in fcnnzoo.list_plugins()}


def test_unregister_by_object():
    name = _unique("by_object")
    plugin = ArchitecturePlugin(name)
    fcnnzoo.register_plugin(plugin, name="by-object")
    fcnnzoo.unregister_plugin(plugin)
    assert name not in fcnnzoo.list_models()


def test_unregister_unknown_plugin_raises():
    with pytest.raises(ValueError, match="No plugin 'never-registered' is registered"):
        fcnnzoo.unregister_plugin("never-registered")


def test_register_same_plugin_twice_is_a_no_op():
    name = _unique("twice")
    plugin = ArchitecturePlugin(name)
    fcnnzoo.register_plugin(plugin, name="twice")
    try:
        assert fcnnzoo.register_plugin(plugin, name="twice") == "twice"
        assert fcnnzoo.register_plugin(plugin) == "twice"
        assert fcnnzoo.list_models(name) == [name]
        info = {p.name: p for p in fcnnzoo.list_plugins()}["twice"]
        assert info.components == (f"architecture:{name}",)
    finally:
        fcnnzoo.unregister_plugin("twice")


def test_plugin_name_taken_by_other_object_raises():
    fcnnzoo.register_plugin(ArchitecturePlugin(_unique("first")), name="taken")
    try:
        with pytest.raises(PluginError, match="'taken' is already registered"):
            fcnnzoo.register_plugin(ArchitecturePlugin(_unique("second")), name="taken")
    finally:
        fcnnzoo.unregister_plugin("taken")


def test_clashing_names_stay_reachable_qualified():
    fcnnzoo.register_plugin(ArchitecturePlugin("fcnn"), name="impostor")
    try:
        with pytest.raises(DuplicateNameError) as excinfo:
            fcnnzoo.create_model("fcnn")
        message = str(excinfo.value)
        assert "'fcnn'" in message
        assert "'fcnnzoo.builtin.architectures:fcnn'" in message
        assert "'impostor:fcnn'" in message
        assert isinstance(excinfo.value, ValueError)

        builtin = fcnnzoo.create_model("fcnnzoo.builtin.architectures:fcnn")
        assert builtin.fcnnzoo_config["architecture"] == "fcnnzoo.builtin.architectures:fcnn"
        assert type(builtin).__name__ == "FCNN"
        impostor = fcnnzoo.create_model("impostor:fcnn")
        assert type(impostor).__name__ == "Sequential"

        names = fcnnzoo.list_models("fcnn")
        assert names == ["fcnnzoo.builtin.architectures:fcnn", "impostor:fcnn"]
        assert fcnnzoo.list_models(plugin="impostor") == ["impostor:fcnn"]
    finally:
        fcnnzoo.unregister_plugin("impostor")
    assert fcnnzoo.list_models("fcnn") == ["fcnn"]
    assert type(fcnnzoo.create_model("fcnn")).__name__ == "FCNN"


def test_qualified_name_with_wrong_plugin():
    with pytest.raises(ValueError, match=r"Plugin 'tinyvgg' registers no architecture 'fcnn'\. Registered as: 'fcnnzoo\.builtin\.architectures:fcnn'"):
        fcnnzoo.create_model("tinyvgg:fcnn")
    with pytest.raises(ValueError, match=r"Unknown architecture 'nobody:nothing'"):
        fcnnzoo.create_model("nobody:nothing")


def test_runtime_plugin_that_raises_is_rejected():
    with pytest.raises(PluginError, match="raised in hook fcnnzoo_register_augmenters: RuntimeError: augmenter table is corrupt"):
        fcnnzoo.register_plugin(RaisingPlugin(), name="raising")
    assert "raising" not in {p.name for p in fcnnzoo.list_plugins()}


def test_hook_returning_wrong_type_is_rejected():
    class WrongType:
        @fcnnzoo.hookimpl
        def fcnnzoo_register_architectures(self):
            return [AugmenterSpec(name="x", factory=object, description="misfiled")]

    with pytest.raises(PluginError, match="returned a AugmenterSpec; expected ArchitectureSpec"):
        fcnnzoo.register_plugin(WrongType(), name="wrong-type")


def test_hook_with_wrong_signature_is_rejected():
    class WrongSignature:
        @fcnnzoo.hookimpl
        def fcnnzoo_register_architectures(self, registry):
            return []

    with pytest.raises(PluginError) as excinfo:
        fcnnzoo.register_plugin(WrongSignature(), name="wrong-signature")
    message = str(excinfo.value)
    assert "'wrong-signature'" in message
    assert "hook fcnnzoo_register_architectures" in message
    assert "argument 'registry'" in message
    assert "wrong-signature" not in {p.name for p in fcnnzoo.list_plugins()}


# -- discovery through entry points --------------------------------------------


def test_entry_point_distribution_discovered(plugin_dir):
    module = _unique("ep_plugin")
    arch = _unique("ep_arch")
    _write_module(plugin_dir, module, GOOD_PLUGIN.format(arch=arch, module=module))
    _install_fake_distribution(plugin_dir, "fcnnzoo-fake-plugin", {"fake": module})

    registry = Registry(builtin_plugins=(), entry_point_group="test_fcnnzoo_group")
    assert [spec.name for spec in registry.specs("architecture")] == [arch]
    (info,) = registry.plugins()
    assert info.name == "fake"
    assert info.source == "entry point"
    assert info.distribution == "fcnnzoo-fake-plugin"
    assert info.version == "1.2.3"
    assert registry.get("architecture", arch).plugin == "fake"


def test_discovery_is_lazy(plugin_dir):
    module = _unique("lazy_plugin")
    _write_module(plugin_dir, module, GOOD_PLUGIN.format(arch="lazy", module=module))
    _install_fake_distribution(plugin_dir, "fcnnzoo-lazy", {"lazy": module})

    registry = Registry(builtin_plugins=(), entry_point_group="test_fcnnzoo_group")
    assert module not in sys.modules
    registry.specs("architecture")
    assert module in sys.modules


def test_broken_plugin_skipped_with_warning(plugin_dir, monkeypatch):
    monkeypatch.delenv("FCNNZOO_STRICT_PLUGINS", raising=False)
    good = _unique("good_plugin")
    broken = _unique("broken_plugin")
    _write_module(plugin_dir, good, GOOD_PLUGIN.format(arch="survivor", module=good))
    _write_module(plugin_dir, broken, "raise ImportError('needs the missing package foo')\n")
    _install_fake_distribution(plugin_dir, "fcnnzoo-mixed", {"good": good, "broken": broken})

    registry = Registry(builtin_plugins=(), entry_point_group="test_fcnnzoo_group")
    with pytest.warns(PluginWarning, match=r"Skipped a broken plugin\. Plugin 'broken' failed to load: ImportError: needs the missing package foo"):
        names = [spec.name for spec in registry.specs("architecture")]
    assert names == ["survivor"]
    infos = {info.name: info for info in registry.plugins()}
    assert infos["broken"].status == "broken"
    assert infos["broken"].error == "ImportError: needs the missing package foo"
    assert infos["good"].status == "ok"


def test_plugin_raising_in_hook_skipped(plugin_dir, monkeypatch):
    monkeypatch.delenv("FCNNZOO_STRICT_PLUGINS", raising=False)
    module = _unique("raising_hook")
    _write_module(
        plugin_dir,
        module,
        """
        import fcnnzoo

        @fcnnzoo.hookimpl
        def fcnnzoo_register_quantizers():
            raise KeyError("calibration")
        """,
    )
    _install_fake_distribution(plugin_dir, "fcnnzoo-raising", {"raising": module})

    registry = Registry(builtin_plugins=(), entry_point_group="test_fcnnzoo_group")
    with pytest.warns(PluginWarning, match="'raising'.*raised in hook fcnnzoo_register_quantizers: KeyError"):
        assert registry.specs("quantizer") == []
    assert registry.plugins()[0].status == "broken"
    assert registry.plugins()[0].hooks == ("fcnnzoo_register_quantizers",)


def test_strict_mode_raises(plugin_dir, monkeypatch):
    monkeypatch.setenv("FCNNZOO_STRICT_PLUGINS", "1")
    broken = _unique("strict_broken")
    _write_module(plugin_dir, broken, "raise ImportError('no such thing')\n")
    _install_fake_distribution(plugin_dir, "fcnnzoo-strict", {"broken": broken})

    registry = Registry(builtin_plugins=(), entry_point_group="test_fcnnzoo_group")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(PluginError, match="Plugin 'broken' failed to load: ImportError: no such thing"):
            registry.specs("architecture")


def test_entry_point_clash_reachable_qualified(plugin_dir):
    first = _unique("first")
    second = _unique("second")
    _write_module(plugin_dir, first, GOOD_PLUGIN.format(arch="clash", module=first))
    _write_module(plugin_dir, second, GOOD_PLUGIN.format(arch="clash", module=second))
    _install_fake_distribution(plugin_dir, "fcnnzoo-clash", {"alpha": first, "beta": second})

    registry = Registry(builtin_plugins=(), entry_point_group="test_fcnnzoo_group")
    with pytest.raises(DuplicateNameError, match=r"registered by 2 plugins \('alpha', 'beta'\)\. Use a qualified name: 'alpha:clash' or 'beta:clash'\."):
        registry.get("architecture", "clash")
    assert registry.get("architecture", "alpha:clash").description == f"from {first}"
    assert registry.get("architecture", "beta:clash").description == f"from {second}"
    assert [registry.display_name("architecture", spec) for spec in registry.specs("architecture")] == ["alpha:clash", "beta:clash"]
    assert all(info.status == "ok" for info in registry.plugins())


def test_broken_builtin_module_reported(monkeypatch):
    monkeypatch.delenv("FCNNZOO_STRICT_PLUGINS", raising=False)
    registry = Registry(builtin_plugins=("fcnnzoo.builtin.no_such_module",), entry_point_group=None)
    with pytest.warns(PluginWarning, match="'fcnnzoo.builtin.no_such_module'.*ModuleNotFoundError"):
        plugins = registry.plugins()
    assert plugins[0].status == "broken"


def test_unknown_model_argument_named():
    with pytest.raises(TypeError, match=r"The architecture 'fcnn' does not accept the argument 'depht'\. Accepted arguments: .*depth"):
        fcnnzoo.create_model("fcnn", depht=3)


def test_unknown_augmenter_argument_named():
    with pytest.raises(TypeError, match=r"The augmenter 'hflip' does not accept the argument 'foo'\. Accepted arguments: p, seed\."):
        fcnnzoo.create_augmenter("hflip", foo=1)


def test_unknown_quantizer_argument_named():
    with pytest.raises(TypeError, match=r"The quantizer 'int8_weight_only' does not accept the argument 'bits'\. Accepted arguments: none\."):
        fcnnzoo.create_quantizer("int8_weight_only", bits=4)
