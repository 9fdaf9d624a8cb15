"""Measure the start-up time of fcnnzoo commands against `python -c "import torch"`.

Each command runs as a fresh process. The script prints the best and the
median wall-clock time of N runs (default 5) as a Markdown table. Usage:

    .venv/bin/python scripts/startup-times.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def command_lines() -> list[tuple[str, list[str], dict[str, str]]]:
    fcnnzoo = shutil.which("fcnnzoo", path=str(BIN)) or "fcnnzoo"
    return [
        ('python -c "import torch"', [sys.executable, "-c", "import torch"], {}),
        ('python -c "import fcnnzoo"', [sys.executable, "-c", "import fcnnzoo"], {}),
        ("fcnnzoo --help", [fcnnzoo, "--help"], {}),
        ("fcnnzoo list plugins", [fcnnzoo, "list", "plugins"], {}),
        ("FCNNZOO_LOAD_PLUGINS= fcnnzoo list plugins", [fcnnzoo, "list", "plugins"], {"FCNNZOO_LOAD_PLUGINS": ""}),
        ("fcnnzoo list models", [fcnnzoo, "list", "models"], {}),
        ("fcnnzoo info resnet8", [fcnnzoo, "info", "resnet8"], {}),
    ]


def time_runs(arguments: list[str], env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(arguments, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per command (default: 5)")
    options = parser.parse_args()

    base = {key: value for key, value in os.environ.items() if not key.startswith("FCNNZOO_")}
    print("| command | best of {0} (s) | median of {0} (s) |".format(options.runs))
    print("|---|---|---|")
    for label, arguments, changes in command_lines():
        # One untimed run warms the file cache, so every command starts from the same state.
        time_runs(arguments, {**base, **changes}, 1)
        times = time_runs(arguments, {**base, **changes}, options.runs)
        print(f"| `{label}` | {min(times):.3f} | {statistics.median(times):.3f} |", flush=True)


if __name__ == "__main__":
    main()
