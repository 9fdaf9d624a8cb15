"""FCNNZOO_CPU_CAPABILITY limits the kernel variants to one instruction-set level and below.

The variable is read once per process, so every case runs in a fresh Python subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fcnnzoo import _C

# Prints, as JSON, the variants the child may use, the default choice for the
# reference network's two layers, and the largest difference between the fused
# op and the PyTorch composite on those layers.
CHILD_SCRIPT = """
import json
import torch
import torch.nn.functional as F
from fcnnzoo import _C
from fcnnzoo.ops import conv_relu_pool

supported = _C.supported_kernels()
torch.manual_seed(0)
chosen = []
error = 0.0
for batch, in_channels, out_channels, size in [(4, 1, 32, 28), (4, 32, 64, 13)]:
    x = torch.randn(batch, in_channels, size, size)
    weight = torch.randn(out_channels, in_channels, 3, 3) * 0.3
    bias = torch.randn(out_channels)
    chosen.append(
        _C.select_kernel(
            list(x.shape), list(weight.shape), stride=(1, 1), padding=(0, 0), pool_kernel=(2, 2),
            pool_stride=(2, 2), ceil_mode=False,
        )
    )
    expected = F.max_pool2d(F.relu(F.conv2d(x, weight, bias)), 2)
    error = max(error, (conv_relu_pool(x, weight, bias) - expected).abs().max().item())
print(json.dumps({"supported": supported, "chosen": chosen, "error": error}))
"""

# Lists the variants without importing torch, which keeps the error cases fast.
LISTING_SCRIPT = "from fcnnzoo import _C; print(_C.supported_kernels())"

SUFFIXES = {"avx512": ("_avx512", "_avx2", "_generic"), "avx2": ("_avx2", "_generic"), "default": ("_generic",)}


def run_child(capability: str, script: str = CHILD_SCRIPT) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, FCNNZOO_CPU_CAPABILITY=capability)
    return subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=120)


def levels_this_cpu_runs() -> list[str]:
    names = _C.supported_kernels() if "FCNNZOO_CPU_CAPABILITY" not in os.environ else []
    levels = ["default"]
    if any(name.endswith("_avx2") for name in names):
        levels.append("avx2")
    if any(name.endswith("_avx512") for name in names):
        levels.append("avx512")
    return levels


@pytest.mark.parametrize("capability", ["avx512", "avx2", "default"])
def test_capability_limits_variants(capability: str) -> None:
    if capability not in levels_this_cpu_runs():
        pytest.skip(f"this CPU cannot run the {capability} variants")
    result = run_child(capability)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])

    allowed = SUFFIXES[capability]
    fast = [name for name in report["supported"] if name != "reference"]
    assert fast and all(name.endswith(allowed) for name in fast), report["supported"]
    assert any(name.endswith(allowed[0]) for name in fast), report["supported"]
    assert "reference" in report["supported"]
    # The default choice takes the widest allowed level for both layers.
    assert all(name.endswith(allowed[0]) for name in report["chosen"]), report["chosen"]
    assert report["error"] < 1e-4


@pytest.mark.parametrize("value", ["avx3", "AVX2", "sse"])
def test_unknown_capability_rejected(value: str) -> None:
    result = run_child(value, LISTING_SCRIPT)
    assert result.returncode != 0
    assert "ValueError" in result.stderr
    assert f"FCNNZOO_CPU_CAPABILITY is '{value}'" in result.stderr
    assert "expected one of: avx512, avx2, default" in result.stderr


def test_missing_cpu_capability_rejected() -> None:
    missing = [level for level in ("avx2", "avx512") if level not in levels_this_cpu_runs()]
    if not missing:
        pytest.skip("this CPU runs every level")
    result = run_child(missing[-1], LISTING_SCRIPT)
    assert result.returncode != 0
    assert "this CPU lacks" in result.stderr
