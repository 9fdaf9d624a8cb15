"""Where the kernels run their threads: PyTorch's OpenMP runtime, or fcnnzoo's own pool.

FCNNZOO_PARALLEL is read once per process, so the pool case runs in a
fresh Python subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from fcnnzoo import _C

CHILD_SCRIPT = """
import sys
import torch
from fcnnzoo import _C
from fcnnzoo.ops import conv_relu_pool
torch.set_num_threads(2)
generator = torch.Generator().manual_seed(0)
x = torch.randn(8, 32, 15, 15, generator=generator, requires_grad=True)
weight = torch.randn(48, 32, 3, 3, generator=generator, requires_grad=True)
output = conv_relu_pool(x, weight, padding=1)
output.sum().backward()
torch.save({"output": output.detach(), "grad_x": x.grad, "grad_weight": weight.grad}, sys.argv[1])
print(_C.parallel_backend())
"""


def run_child(tmp_path, parallel: str | None) -> tuple[str, dict[str, torch.Tensor]]:
    environment = dict(os.environ)
    environment.pop("FCNNZOO_PARALLEL", None)
    if parallel is not None:
        environment["FCNNZOO_PARALLEL"] = parallel
    path = tmp_path / f"{parallel}.pt"
    completed = subprocess.run(
        [sys.executable, "-c", CHILD_SCRIPT, str(path)], env=environment, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.strip(), torch.load(path)


def torch_ships_openmp() -> bool:
    with open("/proc/self/maps", encoding="utf-8") as maps:
        return any("libgomp" in line or "libomp" in line or "libiomp" in line for line in maps)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_kernels_use_pytorch_openmp_threads() -> None:
    if not torch_ships_openmp():
        pytest.skip("this PyTorch build loads no OpenMP runtime")
    assert _C.parallel_backend() == "openmp"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_own_pool_gives_same_results(tmp_path) -> None:
    pool_backend, pool = run_child(tmp_path, "pool")
    default_backend, default = run_child(tmp_path, None)
    assert pool_backend == "pool"
    assert default_backend == ("openmp" if torch_ships_openmp() else "pool")
    for name, tensor in default.items():
        torch.testing.assert_close(pool[name], tensor, rtol=1e-6, atol=1e-5, msg=name)


FORK_SCRIPT = """
import multiprocessing
import numpy as np
from fcnnzoo import _C

def forward(x, weight):
    output = np.empty((x.shape[0], weight.shape[0], 7, 7), dtype=np.float32)
    _C.conv_relu_pool_forward(x, weight, None, output, stride=(1, 1), padding=(0, 0), pool_kernel=(2, 2),
                              pool_stride=(2, 2), ceil_mode=False, num_threads=2)
    return output

if __name__ == "__main__":
    random = np.random.default_rng(0)
    x = random.standard_normal((8, 4, 16, 16), dtype=np.float32)
    weight = random.standard_normal((24, 4, 3, 3), dtype=np.float32)
    parent = forward(x, weight)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child = pool.apply_async(forward, (x, weight)).get(timeout=60)
    assert np.array_equal(parent, child)
    print(_C.parallel_backend())
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_own_pool_survives_fork(tmp_path) -> None:
    # The default backend's fork case runs in test_ops; this one covers the pool's.
    script = tmp_path / "fork_check.py"
    script.write_text(FORK_SCRIPT)
    environment = {**os.environ, "FCNNZOO_PARALLEL": "pool"}
    completed = subprocess.run([sys.executable, str(script)], env=environment, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "pool"
