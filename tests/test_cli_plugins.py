"""Tests of 'fcnnzoo list' and 'fcnnzoo info' with plugins: status, filters, cards and start-up imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fcnnzoo
from fcnnzoo import cli
from fcnnzoo.specs import ArchitectureSpec
from cli_runs import assert_usage_error
from cli_runs import run

PLUGIN_INFO_KEYS = {
    "name",
    "source",
    "status",
    "distribution",
    "version",
    "hooks",
    "components",
    "error",
    "reason",
    "api_version",
    "host_api_version",
}


def run_subprocess(code_or_arguments: list[str], env_changes: dict[str, str], extra_path: Path | None = None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FCNNZOO_")}
    env.update(env_changes)
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), env.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, *code_or_arguments], capture_output=True, text=True, env=env, timeout=300)


# -- list plugins ---------------------------------------------------------------------


def test_list_plugins_json_fields(capsys):
    code, out, err = run(capsys, "list", "plugins", "--json")
    assert code == 0, err
    rows = {row["name"]: row for row in json.loads(out)}
    for row in rows.values():
        assert set(row) == PLUGIN_INFO_KEYS
    resnet = rows["resnet"]
    assert resnet["status"] == "ok"
    assert resnet["source"] == "entry point"
    assert resnet["distribution"] == "fcnnzoo-resnet"
    assert resnet["hooks"] == ["fcnnzoo_register_architectures"]
    assert sorted(resnet["components"]) == ["architecture:resnet14", "architecture:resnet20", "architecture:resnet8"]
    assert resnet["api_version"] == ">=1.0,<2"
    assert resnet["host_api_version"] == fcnnzoo.API_VERSION
    assert rows["fcnnzoo.builtin.quantizers"]["version"] == fcnnzoo.__version__


def test_list_plugins_human(capsys):
    code, out, _ = run(capsys, "list", "plugins")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["name", "package", "status", "hooks", "registered", "or", "error"]
    resnet = next(line for line in lines if line.startswith("resnet "))
    assert resnet.split()[:5] == ["resnet", "fcnnzoo-resnet", "0.1.0", "ok", "architectures"]
    assert "architecture:resnet8" in resnet


def test_list_models_plugin_filter(capsys):
    code, out, _ = run(capsys, "list", "models", "--plugin", "resnet", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [row["name"] for row in rows] == ["resnet14", "resnet20", "resnet8"]
    assert {row["distribution"] for row in rows} == {"fcnnzoo-resnet"}


def test_list_unknown_plugin_filter(capsys):
    code, out, err = run(capsys, "list", "models", "--plugin", "resnt")
    assert_usage_error(code, out, err, "Unknown plugin 'resnt' in --plugin", "fcnnzoo list plugins", "resnet")


def test_list_models_shows_qualified_names_on_clash(capsys, fcnnzoo_plugin):
    class Clash:
        @fcnnzoo.hookimpl
        def fcnnzoo_register_architectures(self):
            return [ArchitectureSpec(name="resnet8", factory="fcnnzoo.models.lenet:LeNet5", description="another resnet8")]

    fcnnzoo_plugin(Clash(), name="clash")
    code, out, _ = run(capsys, "list", "models", "resnet8", "--json")
    assert code == 0
    assert [row["name"] for row in json.loads(out)] == ["clash:resnet8", "resnet:resnet8"]

    code, out, err = run(capsys, "info", "resnet8")
    assert_usage_error(code, out, err, "registered by 2 plugins", "'clash:resnet8' or 'resnet:resnet8'")
    code, out, err = run(capsys, "info", "clash:resnet8", "--json")
    assert code == 0, err
    assert json.loads(out)["macs"] == 416_520


# -- info ----------------------------------------------------------------------------------


def test_info_json_card(capsys):
    code, out, err = run(capsys, "info", "resnet8", "--json")
    assert code == 0, err
    card = json.loads(out)
    assert card == fcnnzoo.model_info("resnet8")
    assert card["params"] == sum(p.numel() for p in fcnnzoo.create_model("resnet8").parameters())
    assert card["macs"] > card["params"]
    assert card["min_input_size"] == [2, 2]
    assert card["distribution"] == "fcnnzoo-resnet"


def test_info_human_card(capsys):
    code, out, _ = run(capsys, "info", "fcnn")
    assert code == 0
    lines = out.splitlines()
    assert "parameters: 121,930" in lines
    assert "multiply-accumulates per image: 2,528,000" in lines
    assert "minimum input size: fixed input size" in lines
    assert f"plugin: fcnnzoo.builtin.architectures (fcnnzoo {fcnnzoo.__version__})" in lines


def test_info_unknown_model(capsys):
    code, out, err = run(capsys, "info", "resnet9")
    assert_usage_error(code, out, err, "Unknown architecture 'resnet9'", "Did you mean", "fcnnzoo list models")


def test_info_crashing_factory(capsys, fcnnzoo_plugin):
    class Crashing:
        @fcnnzoo.hookimpl
        def fcnnzoo_register_architectures(self):
            def build(in_channels, num_classes):
                raise RuntimeError("weights table missing")

            return [ArchitectureSpec(name="crashing_model", factory=build, description="crashes")]

    fcnnzoo_plugin(Crashing(), name="crashing")
    code, out, err = run(capsys, "info", "crashing_model")
    assert_usage_error(code, out, err, "'crashing_model' of plugin 'crashing' failed to build: RuntimeError: weights table missing")


# -- start-up imports and broken plugins, in fresh processes ----------------------------------

IMPORTS_AFTER = textwrap.dedent(
    """
    import sys
    from fcnnzoo import cli
    code = cli.main(sys.argv[1:])
    modules = ("torch", "fcnnzoo.models", "fcnnzoo.quantization", "fcnnzoo.builtin.augmenters", "fcnnzoo_resnet.models")
    heavy = sorted(name for name in modules if name in sys.modules)
    print("IMPORTED", ",".join(heavy) or "-", "EXIT", code)
    """
)


def _imports_after(arguments: list[str], env_changes: dict[str, str]) -> tuple[str, str]:
    result = run_subprocess(["-c", IMPORTS_AFTER, *arguments], env_changes)
    last = result.stdout.strip().splitlines()[-1].split()
    return last[1], last[3]


def test_help_imports_no_torch():
    assert _imports_after(["--help"], {}) == ("-", "0")


def test_list_imports_no_model_code():
    assert _imports_after(["list", "plugins"], {}) == ("-", "0")
    assert _imports_after(["list", "models"], {}) == ("-", "0")
    assert _imports_after(["list", "augmenters"], {}) == ("-", "0")


BROKEN_PLUGIN = """
import fcnnzoo

@fcnnzoo.hookimpl
def fcnnzoo_register_architectures():
    raise RuntimeError("cannot read the model table")
"""


@pytest.fixture
def broken_site(tmp_path) -> Path:
    """A folder with an installed distribution whose plugin raises in its hook."""
    (tmp_path / "fcnnzoo_broken_plugin.py").write_text(BROKEN_PLUGIN)
    info = tmp_path / "fcnnzoo_broken-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fcnnzoo-broken\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text("[fcnnzoo]\nbroken = fcnnzoo_broken_plugin\n")
    return tmp_path


def test_broken_plugin_does_not_stop_help(broken_site):
    result = run_subprocess(["-m", "fcnnzoo", "--help"], {}, broken_site)
    assert result.returncode == 0, result.stderr
    assert "COMMAND" in result.stdout


def test_broken_plugin_does_not_stop_list(broken_site):
    result = run_subprocess(["-m", "fcnnzoo", "list", "models", "--json"], {}, broken_site)
    assert result.returncode == 0, result.stderr
    assert "fcnn" in [row["name"] for row in json.loads(result.stdout)]
    assert "Skipped a broken plugin. Plugin 'broken' raised in hook fcnnzoo_register_architectures: RuntimeError: cannot read the model table" in result.stderr
    assert "Traceback" not in result.stderr


def test_broken_plugin_listed_with_error(broken_site):
    result = run_subprocess(["-m", "fcnnzoo", "list", "plugins", "--json"], {}, broken_site)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["broken"]["status"] == "broken"
    assert rows["broken"]["distribution"] == "fcnnzoo-broken"
    assert rows["broken"]["error"] == "Plugin 'broken' raised in hook fcnnzoo_register_architectures: RuntimeError: cannot read the model table"
    assert rows["resnet"]["status"] == "ok"


def test_broken_plugin_in_strict_mode_exits_2(broken_site):
    result = run_subprocess(["-m", "fcnnzoo", "list", "models"], {"FCNNZOO_STRICT_PLUGINS": "1"}, broken_site)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("fcnnzoo: error: Plugin 'broken' raised in hook")
    assert "Traceback" not in result.stderr


def test_load_plugins_env_blocks_others():
    result = run_subprocess(["-m", "fcnnzoo", "list", "plugins", "--json"], {"FCNNZOO_LOAD_PLUGINS": "tinyvgg"})
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["tinyvgg"]["status"] == "ok"
    assert rows["resnet"]["status"] == "blocked"
    assert rows["resnet"]["reason"] == "not listed in FCNNZOO_LOAD_PLUGINS"
    assert rows["fcnnzoo.builtin.architectures"]["status"] == "ok"
