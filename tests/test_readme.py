"""The README's Python example runs as written."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from datafiles import write_folder

import fcnnzoo
from fcnnzoo import cli
from fcnnzoo.component_spec import parse_component_spec

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert match is not None, "README has no python block under '## Python API'"
    return match.group(1)


@pytest.mark.slow
def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(_python_example(), str(README), "exec"), {"__name__": "readme_example"})

    printed = capsys.readouterr().out.split()
    assert len(printed) == 2
    trained_accuracy, quantized_accuracy = (float(value) for value in printed)
    assert trained_accuracy >= 0.97
    assert abs(quantized_accuracy - trained_accuracy) <= 0.01
    assert (tmp_path / "runs" / "api-fcnn" / "model.safetensors").is_file()


def _section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _console_commands(section: str) -> list[list[str]]:
    """Return the fcnnzoo commands of a section's console blocks, split into arguments."""
    commands = []
    for block in re.findall(r"```console\n(.*?)```", section, flags=re.DOTALL):
        for command in block.replace("\\\n", " ").splitlines():
            if command.startswith("$ fcnnzoo "):
                commands.append(shlex.split(command[len("$ fcnnzoo ") :]))
    return commands


def _option_values(option: str) -> list[str]:
    """Return every value of ``option`` in the README's console examples."""
    values = []
    for command in _console_commands(README.read_text(encoding="utf-8")):
        values.extend(value for flag, value in zip(command, command[1:]) if flag == option)
    return values


def test_readme_augment_specs_build():
    specs = _option_values("--augment")
    assert len(specs) >= 5
    for spec in specs:
        assert fcnnzoo.create_augmenter(spec, seed=0) is not None


def test_readme_dataset_names_registered():
    specs = _option_values("--dataset")
    assert len(specs) >= 3
    for spec in specs:
        assert parse_component_spec(spec, "--dataset")[0] in fcnnzoo.list_datasets()


def test_readme_folder_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_folder(tmp_path / "pets", {"cat": 5, "dog": 5}, size=(40, 36))
    commands = _console_commands(_section("Datasets"))
    assert [command[0] for command in commands] == ["train", "eval"]
    for command in commands:
        arguments = [str(tmp_path / "pets") if argument == "~/data/pets" else argument for argument in command]
        code = cli.main(arguments)
        assert code == 0, capsys.readouterr().err
    assert (tmp_path / "runs" / "pets" / "model.safetensors").is_file()


def _section_python(title: str) -> str:
    match = re.search(r"```python\n(.*?)```", _section(title), flags=re.DOTALL)
    assert match is not None, f"README has no python block under '## {title}'"
    return match.group(1)


@pytest.mark.slow
def test_readme_checkpoint_example_runs(fcnn_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(fcnn_run["path"], tmp_path / "runs" / "fcnn")
    exec(compile(_section_python("Checkpoints"), str(README), "exec"), {"__name__": "readme_example"})
    assert capsys.readouterr().out.strip() == str([str(digit) for digit in range(10)])
    assert (tmp_path / "runs" / "fcnn-copy" / "model.safetensors").is_file()

    commands = _console_commands(_section("Checkpoints"))
    assert [command[0] for command in commands] == ["predict"]
    code = cli.main([*commands[0], "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    ranked = json.loads(captured.out)["predictions"][0]["top_k"]
    assert len(ranked) == 3
    assert ranked[0]["class"] == "0"
