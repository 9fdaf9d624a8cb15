"""Tests of the fcnnzoo-resnet plugin: discovery, the conformance kit, shapes and one training run."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import fcnnzoo
from fcnnzoo.nn import ConvReLUPool
from fcnnzoo.testing import check_architecture
from fcnnzoo.testing import check_plugin
from fcnnzoo.testing import isolated_registry

RESNETS = ["resnet8", "resnet14", "resnet20"]


@pytest.fixture(scope="module")
def digits_splits():
    """scikit-learn's bundled digits as 28x28 train and test splits, loaded once."""
    return fcnnzoo.load_dataset("digits")


def test_discovered_through_entry_point():
    plugins = {info.name: info for info in fcnnzoo.list_plugins()}
    info = plugins["resnet"]
    assert info.status == "ok"
    assert info.distribution == "fcnnzoo-resnet"
    assert info.hooks == ("fcnnzoo_register_architectures",)
    assert info.api_version == ">=1.0,<2"
    assert sorted(info.components) == [f"architecture:{name}" for name in sorted(RESNETS)]


def test_listing_imports_no_model_code():
    code = (
        "import sys, fcnnzoo; fcnnzoo.list_models(plugin='resnet'); "
        "print('fcnnzoo_resnet.models' in sys.modules, 'fcnnzoo_resnet' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "True"]


def test_plugin_conforms():
    assert sorted(check_plugin("resnet")["architecture"]) == sorted(RESNETS)


def test_conforms_alone_in_fresh_registry():
    import fcnnzoo_resnet

    with isolated_registry(builtins=False) as registry:
        registry.register_plugin(fcnnzoo_resnet, name="resnet-only")
        assert fcnnzoo.list_models() == ["resnet14", "resnet20", "resnet8"]
        card = check_architecture("resnet8")
    assert card["plugin"] == "resnet-only"


@pytest.mark.parametrize(("name", "blocks"), [("resnet8", 3), ("resnet14", 6), ("resnet20", 9)])
def test_depth_and_stem(name, blocks):
    from fcnnzoo_resnet.models import BasicBlock

    model = fcnnzoo.create_model(name)
    assert isinstance(model.stem, ConvReLUPool)
    assert sum(isinstance(module, BasicBlock) for module in model.modules()) == blocks
    three_by_three = [
        module for module in model.modules() if isinstance(module, (torch.nn.Conv2d, ConvReLUPool)) and module.kernel_size == (3, 3)
    ]
    linear = [module for module in model.modules() if isinstance(module, torch.nn.Linear)]
    weighted = three_by_three + linear
    assert len(weighted) == 2 * blocks + 2


@pytest.mark.parametrize("size", [(2, 2), (28, 28), (32, 32), (45, 37)])
def test_any_input_size(size):
    model = fcnnzoo.create_model("resnet8", num_classes=4).eval()
    with torch.no_grad():
        logits = model(torch.randn(3, 1, *size))
    assert logits.shape == (3, 4)
    assert torch.isfinite(logits).all()


def test_stage_output_sizes_at_28_and_32():
    model = fcnnzoo.create_model("resnet8").eval()
    sizes = {}
    for side in (28, 32):
        x = torch.zeros(1, 1, side, side)
        with torch.no_grad():
            stem = model.stem(x)
            sizes[side] = [tuple(stem.shape[-2:])]
            for block in model.stages:
                stem = block(stem)
                sizes[side].append(tuple(stem.shape[-2:]))
    assert sizes[28] == [(14, 14), (14, 14), (7, 7), (4, 4)]
    assert sizes[32] == [(16, 16), (16, 16), (8, 8), (4, 4)]


def test_parameter_count_by_hand():
    # Stem 3x3 conv 1->16 with bias; stage 1 block: two 3x3 16->16 convs and two batch norms;
    # stages 2 and 3: 3x3 convs 16->32, 32->32 (and 32->64, 64->64), a 1x1 projection and three batch norms; linear 64->10.
    stem = 16 * 1 * 9 + 16
    stage1 = 2 * (16 * 16 * 9) + 2 * 2 * 16
    stage2 = 32 * 16 * 9 + 32 * 32 * 9 + 32 * 16 + 3 * 2 * 32
    stage3 = 64 * 32 * 9 + 64 * 64 * 9 + 64 * 32 + 3 * 2 * 64
    classifier = 64 * 10 + 10
    assert fcnnzoo.model_info("resnet8")["params"] == stem + stage1 + stage2 + stage3 + classifier


def test_fused_matches_composite():
    torch.manual_seed(0)
    fused = fcnnzoo.create_model("resnet14", fused=True).eval()
    composite = fcnnzoo.create_model("resnet14", fused=False).eval()
    composite.load_state_dict(fused.state_dict())
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), composite(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"width": 0}, ValueError, "resnet width must be a positive integer, got 0"),
        ({"width": 2.5}, TypeError, "resnet width must be an int, got 2.5"),
        ({"num_classes": True}, TypeError, "resnet num_classes must be an int, got True"),
    ],
)
def test_rejects_bad_arguments(arguments, error, message):
    with pytest.raises(error, match=message):
        fcnnzoo.create_model("resnet8", **arguments)


def test_rejects_bad_depth():
    from fcnnzoo_resnet.models import ResNet

    with pytest.raises(ValueError, match=r"resnet depth must be 6n \+ 2 with n >= 1 \(8, 14, 20, \.\.\.\), got 10"):
        ResNet(depth=10)


def test_rejects_unbatched_input():
    model = fcnnzoo.create_model("resnet8")
    with pytest.raises(ValueError, match=r"resnet expects a \(N, C, H, W\) batch, got a tensor of shape \(1, 28, 28\)"):
        model(torch.zeros(1, 28, 28))


def test_trains_on_digits(digits_splits):
    from fcnnzoo.training import evaluate
    from fcnnzoo.training import train

    # Half the default width and a higher learning rate keep the run to a few seconds;
    # this recipe reached 0.967 test accuracy with seed 0.
    torch.manual_seed(0)
    model = fcnnzoo.create_model("resnet8", width=8)
    before = evaluate(model, digits_splits.test).accuracy
    train(model, digits_splits, epochs=3, lr=1e-2, seed=0, progress=False, evaluate_each_epoch=False)
    after = evaluate(model, digits_splits.test).accuracy
    assert before < 0.3
    assert after >= 0.9


def test_builds_as_standalone_wheel(tmp_path):
    import shutil
    import zipfile
    from pathlib import Path

    pytest.importorskip("setuptools")
    # A copy, because setuptools writes build/ and *.egg-info/ next to the sources.
    project = shutil.copytree(Path(__file__).parents[1], tmp_path / "project", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build"))
    out = tmp_path / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out), str(project)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = out.glob("fcnnzoo_resnet-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = archive.read(next(name for name in names if name.endswith("entry_points.txt"))).decode()
        metadata = archive.read(next(name for name in names if name.endswith("METADATA"))).decode()
    assert "fcnnzoo_resnet/__init__.py" in names
    assert "fcnnzoo_resnet/models.py" in names
    assert "[fcnnzoo]\nresnet = fcnnzoo_resnet" in entry_points
    assert "Requires-Dist: fcnnzoo" in metadata
