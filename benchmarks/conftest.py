"""Shared hooks of the benchmark suite."""

from __future__ import annotations

from typing import Any

import pytest


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list[Any], output_json: dict[str, Any]) -> None:
    """Add ``gflop_per_second`` to every benchmark that records a ``flop_count`` in its extra_info."""
    for entry in output_json.get("benchmarks", []):
        extra_info = entry.get("extra_info", {})
        median = (entry.get("stats") or {}).get("median")
        if "flop_count" in extra_info and median:
            extra_info["gflop_per_second"] = extra_info["flop_count"] / median / 1e9
