from __future__ import annotations

import pytest
import torch

import fcnnzoo
from fcnnzoo.nn import ConvReLUPool
from fcnnzoo.testing import check_plugin


def test_tiny_vgg_discovered_through_entry_point():
    assert "tiny_vgg" in fcnnzoo.list_models()
    plugins = {info.name: info for info in fcnnzoo.list_plugins()}
    assert plugins["tinyvgg"].status == "ok"
    assert plugins["tinyvgg"].distribution == "fcnnzoo-tinyvgg"
    assert "architecture:tiny_vgg" in plugins["tinyvgg"].components


def test_tiny_vgg_conforms():
    checked = check_plugin("tinyvgg")
    assert checked == {"architecture": ["tiny_vgg"], "augmenter": [], "quantizer": []}


@pytest.mark.parametrize("size", [(4, 4), (28, 28), (32, 30)])
def test_tiny_vgg_output_shape(size):
    model = fcnnzoo.create_model("tiny_vgg", num_classes=7).eval()
    with torch.no_grad():
        logits = model(torch.randn(3, 1, *size))
    assert logits.shape == (3, 7)
    assert torch.isfinite(logits).all()


def test_tiny_vgg_fused_matches_composite():
    torch.manual_seed(0)
    fused = fcnnzoo.create_model("tiny_vgg", fused=True).eval()
    composite = fcnnzoo.create_model("tiny_vgg", fused=False).eval()
    composite.load_state_dict(fused.state_dict())
    x = torch.randn(5, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), composite(x), rtol=1e-4, atol=1e-5)
    assert sum(isinstance(m, ConvReLUPool) for m in fused.modules()) == 2


def test_tiny_vgg_rejects_bad_width():
    with pytest.raises(ValueError, match="width must be a positive integer, got 0"):
        fcnnzoo.create_model("tiny_vgg", width=0)
