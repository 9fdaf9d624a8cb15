"""Cached forward plans of ConvReLUPool layers: reuse, repacking and fallbacks."""

from __future__ import annotations

import copy
import pickle
import threading

import pytest
import torch

from fcnnzoo import _C
from fcnnzoo import planned
from fcnnzoo.nn import ConvReLUPool
from fcnnzoo.ops import conv_relu_pool_reference

RTOL = 1e-5
ATOL = 1e-4


@pytest.fixture(autouse=True)
def fresh_plans():
    planned.forget_plans()
    yield
    planned.forget_plans()


def layer(in_channels: int = 3, out_channels: int = 8, **settings) -> ConvReLUPool:
    torch.manual_seed(0)
    return ConvReLUPool(in_channels, out_channels, 3, **settings)


def expected(module: ConvReLUPool, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return conv_relu_pool_reference(x, module.weight, module.bias, **module.op_settings())


def test_batch_sizes_share_one_plan() -> None:
    module = layer(padding=1)
    with torch.no_grad():
        first = module(torch.randn(2, 3, 12, 12))
        plan = planned._PLANS[module]
        for batch in (1, 5):
            x = torch.randn(batch, 3, 12, 12)
            torch.testing.assert_close(module(x), expected(module, x), rtol=RTOL, atol=ATOL)
    assert planned._PLANS[module] is plan
    assert first.shape == (2, 8, 6, 6)


def test_new_input_size_new_plan() -> None:
    module = layer()
    with torch.no_grad():
        module(torch.randn(1, 3, 12, 12))
        plan = planned._PLANS[module]
        x = torch.randn(2, 3, 17, 9)
        torch.testing.assert_close(module(x), expected(module, x), rtol=RTOL, atol=ATOL)
    assert planned._PLANS[module] is not plan


def test_optimizer_step_repacks_weights() -> None:
    module = layer()
    x = torch.randn(4, 3, 10, 10)
    with torch.no_grad():
        before = module(x)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.5)
    module(x).sum().backward()
    optimizer.step()
    with torch.no_grad():
        after = module(x)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected(module, x), rtol=RTOL, atol=ATOL)


def test_replaced_weights_are_seen() -> None:
    module = layer()
    other = layer()
    with torch.no_grad():
        other.weight.mul_(-2.0)
        other.bias.add_(1.0)
    x = torch.randn(2, 3, 10, 10)
    with torch.no_grad():
        module(x)
        module.load_state_dict(other.state_dict())
        torch.testing.assert_close(module(x), expected(other, x), rtol=RTOL, atol=ATOL)
        module.weight = torch.nn.Parameter(torch.randn(8, 3, 3, 3))
        torch.testing.assert_close(module(x), expected(module, x), rtol=RTOL, atol=ATOL)
        module.bias = None
        torch.testing.assert_close(module(x), expected(module, x), rtol=RTOL, atol=ATOL)


def test_inference_mode_weights_repack_each_call() -> None:
    # Inference tensors keep no version counter, so a change cannot be seen.
    x = torch.randn(2, 3, 10, 10)
    with torch.inference_mode():
        module = layer()
        module(x)
        module.weight.mul_(3.0)
        torch.testing.assert_close(module(x), expected(module, x), rtol=RTOL, atol=ATOL)


def test_numpy_writes_need_forget_plans() -> None:
    module = layer()
    x = torch.randn(2, 3, 10, 10)
    with torch.no_grad():
        module(x)
        module.weight.detach().numpy()[:] *= -1.0
        stale = module(x)
        planned.forget_plans()
        fresh = module(x)
    torch.testing.assert_close(fresh, expected(module, x), rtol=RTOL, atol=ATOL)
    assert not torch.allclose(stale, fresh)


def test_planned_module_copies_and_pickles() -> None:
    module = layer()
    x = torch.randn(2, 3, 10, 10)
    with torch.no_grad():
        output = module(x)
        for clone in (copy.deepcopy(module), pickle.loads(pickle.dumps(module))):
            torch.testing.assert_close(clone(x), output, rtol=0, atol=0)


def test_unqualified_calls_skip_plans() -> None:
    module = layer()
    x = torch.randn(2, 3, 10, 10)
    # Training calls, non-contiguous inputs and float64 run without a plan.
    module(x)
    assert module not in planned._PLANS
    with torch.no_grad():
        wide = torch.randn(2, 3, 10, 20)[..., ::2]
        torch.testing.assert_close(module(wide), expected(module, wide), rtol=RTOL, atol=ATOL)
        assert module not in planned._PLANS
        double = module.double()
        torch.testing.assert_close(double(x.double()), expected(double, x.double()), rtol=1e-12, atol=1e-12)
        assert module not in planned._PLANS


def test_invalid_input_raises_op_error() -> None:
    module = layer()
    with torch.no_grad():
        module(torch.randn(1, 3, 10, 10))
        with pytest.raises(ValueError, match="channels"):
            module(torch.randn(1, 4, 10, 10))
        with pytest.raises(ValueError, match="pool_kernel"):
            module(torch.randn(1, 3, 3, 3))


def test_concurrent_calls_match_serial() -> None:
    module = layer(3, 32, padding=1)
    inputs = [torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) for seed in range(8)]
    with torch.no_grad():
        serial = [module(x) for x in inputs]
    results: list[torch.Tensor | None] = [None] * len(inputs)

    def work(index: int) -> None:
        with torch.no_grad():
            for _ in range(20):
                results[index] = module(inputs[index])

    threads = [threading.Thread(target=work, args=(index,)) for index in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result, reference in zip(results, serial, strict=True):
        assert result is not None
        torch.testing.assert_close(result, reference, rtol=0, atol=0)


def test_native_plan_rejects_bad_calls() -> None:
    plan = _C.ForwardPlan(
        (1, 3, 10, 10), (8, 3, 3, 3), stride=(1, 1), padding=(0, 0), pool_kernel=(2, 2), pool_stride=(2, 2), ceil_mode=False
    )
    x = torch.randn(2, 3, 10, 10)
    output = torch.empty(2, 8, 4, 4)
    with pytest.raises(ValueError, match="set_weights"):
        plan.forward(x.numpy(), output.numpy(), None, 1)
    with pytest.raises(ValueError, match="planned shape"):
        plan.set_weights(torch.randn(8, 3, 2, 2).numpy(), None)
    plan.set_weights(torch.randn(8, 3, 3, 3).numpy(), torch.randn(8).numpy())
    with pytest.raises(ValueError, match="planned shape"):
        plan.forward(torch.randn(2, 3, 11, 10).numpy(), output.numpy(), None, 1)
    with pytest.raises(ValueError, match="output must have shape"):
        plan.forward(x.numpy(), torch.empty(2, 8, 5, 4).numpy(), None, 1)
    with pytest.raises(ValueError, match="channels"):
        _C.ForwardPlan(
            (1, 3, 10, 10), (8, 4, 3, 3), stride=(1, 1), padding=(0, 0), pool_kernel=(2, 2), pool_stride=(2, 2), ceil_mode=False
        )
