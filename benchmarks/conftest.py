"""Shared hooks of the benchmark suite."""

from __future__ import annotations

from typing import Any

import pytest


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: list[Any], output_json: dict[str, Any]) -> None:
    """Add GFLOP/s at the median time for every FLOP count a benchmark records in its extra_info.

    ``flop_count`` becomes ``gflop_per_second`` and ``executed_flop_count``
    becomes ``executed_gflop_per_second``.
    """
    for entry in output_json.get("benchmarks", []):
        extra_info = entry.get("extra_info", {})
        median = (entry.get("stats") or {}).get("median")
        if not median:
            continue
        if "flop_count" in extra_info:
            extra_info["gflop_per_second"] = extra_info["flop_count"] / median / 1e9
        if "executed_flop_count" in extra_info:
            extra_info["executed_gflop_per_second"] = extra_info["executed_flop_count"] / median / 1e9
