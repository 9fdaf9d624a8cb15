"""The README's Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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
