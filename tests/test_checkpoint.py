"""Tests of checkpoint folders: round trips, hash verification, invalid input and atomic writes."""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import re
from importlib.metadata import version as distribution_version
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save_file
from torch import nn

import fcnnzoo
from fcnnzoo import checkpoint


def _tiny(seed: int = 0, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    return fcnnzoo.create_model("tiny_cnn", **kwargs)


def _inputs() -> torch.Tensor:
    return torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(11))


def _outputs(model: nn.Module) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(_inputs())


def _hidden_entries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


def _rewrite_weights(folder: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Replace the weights and record their new size and sha256, as a consistent but wrong checkpoint."""
    save_file(tensors, folder / checkpoint.WEIGHTS_FILE)
    data = (folder / checkpoint.WEIGHTS_FILE).read_bytes()
    config = json.loads((folder / checkpoint.CONFIG_FILE).read_text())
    config["weights_bytes"] = len(data)
    config["weights_sha256"] = hashlib.sha256(data).hexdigest()
    (folder / checkpoint.CONFIG_FILE).write_text(json.dumps(config))


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / checkpoint.CONFIG_FILE).read_text())
    config.update(changes)
    (folder / checkpoint.CONFIG_FILE).write_text(json.dumps(config))


@pytest.fixture
def saved(test_components, tmp_path) -> tuple[nn.Module, Path]:
    model = _tiny(seed=1)
    path = checkpoint.save(model, tmp_path / "ckpt", classes=[f"c{i}" for i in range(10)], mean=[0.25], std=[0.5], dataset="digits")
    return model, path


# -- round trips -------------------------------------------------------------------


def test_round_trip_gives_equal_outputs(saved):
    model, path = saved
    loaded = checkpoint.load(path)
    assert torch.equal(_outputs(loaded), _outputs(model))
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_loaded_model_is_in_eval_mode_with_metadata(saved):
    _, path = saved
    loaded = checkpoint.load(path)
    assert loaded.training is False
    metadata = loaded.fcnnzoo_checkpoint
    assert metadata["classes"] == [f"c{i}" for i in range(10)]
    assert metadata["normalization"] == {"mean": [0.25], "std": [0.5]}
    assert metadata["dataset"] == "digits"
    assert metadata["path"] == str(path)
    assert loaded.fcnnzoo_config["architecture"] == "tiny_cnn"


def test_config_records_model_and_weights_hash(saved):
    _, path = saved
    config = json.loads((path / "config.json").read_text())
    assert config["format"] == "fcnnzoo-checkpoint"
    assert config["format_version"] == 1
    assert config["fcnnzoo_version"] == fcnnzoo.__version__
    assert config["architecture"] == "tiny_cnn"
    assert config["arguments"] == {"in_channels": 1, "num_classes": 10}
    assert config["in_channels"] == 1
    assert config["num_classes"] == 10
    assert config["input_size"] == [28, 28]
    assert config["quantization"] is None
    assert config["weights_sha256"] == hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def test_config_records_plugin_and_size(saved):
    _, path = saved
    config = json.loads((path / "config.json").read_text())
    assert config["plugin"] == {"name": "test-components", "distribution": None, "version": None}
    assert config["weights_bytes"] == (path / "model.safetensors").stat().st_size
    assert config["fcnnzoo_version"] == fcnnzoo.__version__


def test_config_records_plugin_distribution(tmp_path):
    path = checkpoint.save(fcnnzoo.create_model("resnet8"), tmp_path / "resnet8")
    config = json.loads((path / "config.json").read_text())
    assert config["plugin"]["distribution"] == "fcnnzoo-resnet"
    assert config["plugin"]["version"] == distribution_version("fcnnzoo-resnet")
    assert config["plugin"]["name"] == fcnnzoo.registry.default_registry().get("architecture", "resnet8").plugin


def test_builtin_plugin_is_fcnnzoo(tmp_path):
    path = checkpoint.save(fcnnzoo.create_model("fcnn"), tmp_path / "fcnn")
    config = json.loads((path / "config.json").read_text())
    assert config["plugin"] == {"name": "fcnnzoo.builtin.architectures", "distribution": "fcnnzoo", "version": distribution_version("fcnnzoo")}


def test_weights_file_is_safetensors_not_pickle(saved):
    model, path = saved
    data = (path / "model.safetensors").read_bytes()
    assert not data.startswith(b"\x80")  # the pickle protocol marker
    tensors = safetensors_load(data)
    assert sorted(tensors) == sorted(model.state_dict())


def test_round_trip_fused_and_unfused(saved):
    model, path = saved
    unfused = checkpoint.load(path, fused=False)
    assert all(not module.fused for module in unfused.modules() if isinstance(module, fcnnzoo.nn.ConvReLUPool))
    assert torch.allclose(_outputs(unfused), _outputs(model), atol=1e-5)


def test_round_trip_fcnn(tmp_path):
    torch.manual_seed(3)
    model = fcnnzoo.create_model("fcnn")
    path = fcnnzoo.save(model, tmp_path / "fcnn")
    loaded = fcnnzoo.load(path)
    assert torch.equal(_outputs(loaded), _outputs(model))
    config = json.loads((path / "config.json").read_text())
    assert config["classes"] == [str(i) for i in range(10)]
    assert config["normalization"] == {"mean": [0.0], "std": [1.0]}


def test_round_trip_keeps_architecture_arguments(test_components, tmp_path):
    model = _tiny(width=6, num_classes=3)
    path = checkpoint.save(model, tmp_path / "wide")
    loaded = checkpoint.load(path)
    assert loaded.block.weight.shape == (6, 1, 3, 3)
    assert torch.equal(_outputs(loaded), _outputs(model))


def test_round_trip_quantized_model(test_components, tmp_path):
    model = _tiny(seed=2)
    quantized = fcnnzoo.create_quantizer("test_half", scale=1.0).quantize(model)
    path = checkpoint.save(quantized, tmp_path / "quantized", dataset="digits")
    config = json.loads((path / "config.json").read_text())
    assert config["quantization"] == {"method": "test_half", "arguments": {"scale": 1.0}}
    loaded = checkpoint.load(path)
    assert "classifier.weight_half" in loaded.state_dict()
    assert loaded.state_dict()["classifier.weight_half"].dtype == torch.float16
    assert torch.equal(_outputs(loaded), _outputs(quantized))


def test_round_trip_int8_weight_only(tmp_path):
    torch.manual_seed(4)
    model = fcnnzoo.create_model("fcnn")
    quantized = fcnnzoo.create_quantizer("int8_weight_only").quantize(model)
    path = checkpoint.save(quantized, tmp_path / "int8")
    loaded = checkpoint.load(path)
    assert loaded.fcnnzoo_checkpoint["quantization"]["method"] == "int8_weight_only"
    assert torch.equal(_outputs(loaded), _outputs(quantized))
    assert (path / "model.safetensors").stat().st_size < 0.5 * len(checkpoint.prepare(model).weights)


def test_saving_loaded_model_keeps_metadata(saved, tmp_path):
    _, path = saved
    copy_path = checkpoint.save(checkpoint.load(path), tmp_path / "copy")
    config = json.loads((copy_path / "config.json").read_text())
    assert config["classes"] == [f"c{i}" for i in range(10)]
    assert config["normalization"] == {"mean": [0.25], "std": [0.5]}
    assert config["dataset"] == "digits"


def test_extra_files_written_with_checkpoint(test_components, tmp_path):
    path = checkpoint.save(_tiny(), tmp_path / "ckpt", extra_files={"metrics.json": {"test_accuracy": 0.5}})
    assert json.loads((path / "metrics.json").read_text()) == {"test_accuracy": 0.5}


def test_noncontiguous_and_shared_tensors_are_saved(test_components):
    model = _tiny()
    model.register_buffer("transposed", torch.arange(6.0).view(2, 3).t())
    model.tied = model.classifier.weight
    model.register_buffer("tied_copy", model.classifier.weight.detach())
    tensors = safetensors_load(checkpoint.prepare(model).weights)
    assert torch.equal(tensors["transposed"], torch.arange(6.0).view(2, 3).t())
    assert torch.equal(tensors["tied_copy"], model.classifier.weight.detach())


def test_load_never_unpickles(saved, monkeypatch):
    model, path = saved

    def fail_on_unpickle(*args, **kwargs):
        raise AssertionError("checkpoint.load must not unpickle anything")

    monkeypatch.setattr(pickle, "load", fail_on_unpickle)
    monkeypatch.setattr(pickle, "loads", fail_on_unpickle)
    monkeypatch.setattr(pickle, "Unpickler", fail_on_unpickle)
    monkeypatch.setattr(torch, "load", fail_on_unpickle)
    loaded = checkpoint.load(path)
    monkeypatch.undo()
    assert torch.equal(_outputs(loaded), _outputs(model))


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "_orig_mod.module.", "module._orig_mod."])
def test_wrapper_prefixed_keys_loaded(saved, prefix):
    model, path = saved
    _rewrite_weights(path, {prefix + name: tensor.clone() for name, tensor in model.state_dict().items()})
    assert torch.equal(_outputs(checkpoint.load(path)), _outputs(model))


def test_prefix_on_some_keys_not_stripped(saved):
    model, path = saved
    tensors = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    tensors["module.classifier.bias"] = tensors.pop("classifier.bias")
    _rewrite_weights(path, tensors)
    with pytest.raises(ValueError, match=r"missing keys \['classifier.bias'\], unexpected keys \['module.classifier.bias'\]"):
        checkpoint.load(path)


def test_compiled_model_saved_with_clean_keys(test_components, tmp_path):
    model = _tiny(seed=6)
    compiled = torch.compile(model)
    assert all(name.startswith("_orig_mod.") for name in compiled.state_dict())
    path = checkpoint.save(compiled, tmp_path / "compiled", classes=[f"k{i}" for i in range(10)])
    tensors = safetensors_load((path / "model.safetensors").read_bytes())
    assert sorted(tensors) == sorted(model.state_dict())
    assert json.loads((path / "config.json").read_text())["architecture"] == "tiny_cnn"
    assert torch.equal(_outputs(checkpoint.load(path)), _outputs(model))


def test_ddp_model_saved_with_clean_keys(test_components, tmp_path):
    import torch.distributed as dist

    model = _tiny(seed=7)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        wrapped = nn.parallel.DistributedDataParallel(model)
        assert all(name.startswith("module.") for name in wrapped.state_dict())
        path = checkpoint.save(wrapped, tmp_path / "ddp")
    finally:
        dist.destroy_process_group()
    tensors = safetensors_load((path / "model.safetensors").read_bytes())
    assert sorted(tensors) == sorted(model.state_dict())
    assert torch.equal(_outputs(checkpoint.load(path)), _outputs(model))


def test_unwrap_model_nested(test_components):
    model = _tiny()
    assert checkpoint.unwrap_model(torch.compile(nn.DataParallel(model))) is model
    assert checkpoint.unwrap_model(model) is model


def test_plugin_version_change_logged(saved, caplog):
    _, path = saved
    _edit_config(path, plugin={"name": "test-components", "distribution": "tiny-dist", "version": "0.0.1"})
    with caplog.at_level(logging.WARNING, logger="fcnnzoo.checkpoint"):
        checkpoint.load(path)
    assert "written with tiny-dist 0.0.1, but None is installed" in caplog.text


def test_same_plugin_version_not_logged(saved, caplog):
    _, path = saved
    with caplog.at_level(logging.WARNING, logger="fcnnzoo.checkpoint"):
        checkpoint.load(path)
    assert caplog.text == ""


def test_recorded_plugin_resolves_duplicate_name(saved):
    model, path = saved

    class RivalPlugin:
        @fcnnzoo.hookimpl
        def fcnnzoo_register_architectures(self):
            return [fcnnzoo.ArchitectureSpec(name="tiny_cnn", factory=nn.Identity, description="a rival with the same name")]

    fcnnzoo.register_plugin(RivalPlugin(), name="rival")
    try:
        with pytest.raises(fcnnzoo.DuplicateNameError):
            fcnnzoo.create_model("tiny_cnn")
        loaded = checkpoint.load(path)
    finally:
        fcnnzoo.unregister_plugin("rival")
    assert loaded.fcnnzoo_config["architecture"] == "test-components:tiny_cnn"
    assert torch.equal(_outputs(loaded), _outputs(model))


# -- invalid checkpoints -------------------------------------------------------------


def test_tampered_weights_rejected(saved):
    _, path = saved
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    recorded = json.loads((path / "config.json").read_text())["weights_sha256"]
    with pytest.raises(ValueError) as info:
        checkpoint.load(path)
    message = str(info.value)
    assert f"has sha256 {hashlib.sha256(bytes(data)).hexdigest()}" in message
    assert f"config.json records {recorded}" in message
    assert "modified or corrupted" in message
    assert str(weights) in message


def test_truncated_weights_rejected(saved):
    _, path = saved
    weights = path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as info:
        checkpoint.load(path)
    message = str(info.value)
    assert f"{weights} is {len(data) // 2} bytes but config.json records {len(data)}" in message
    assert "truncated" in message


def test_truncated_weights_without_recorded_size_rejected(saved):
    _, path = saved
    config = json.loads((path / "config.json").read_text())
    del config["weights_bytes"]
    (path / "config.json").write_text(json.dumps(config))
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match="has sha256 .* modified or corrupted"):
        checkpoint.load(path)


def test_missing_folder_rejected(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        checkpoint.load(tmp_path / "nowhere")


def test_file_instead_of_folder_rejected(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match="weights.bin"):
        checkpoint.load(path)


def test_missing_config_rejected(saved):
    _, path = saved
    (path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        checkpoint.load(path)


def test_missing_weights_rejected(saved):
    _, path = saved
    (path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        checkpoint.load(path)


def test_invalid_json_rejected(saved):
    _, path = saved
    (path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        checkpoint.load(path)


def test_non_object_config_rejected(saved):
    _, path = saved
    (path / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must contain a JSON object, got list"):
        checkpoint.load(path)


def test_unknown_format_version_rejected(saved):
    _, path = saved
    _edit_config(path, format_version=99)
    with pytest.raises(ValueError, match="format_version 99"):
        checkpoint.load(path)


def test_foreign_format_rejected(saved):
    _, path = saved
    _edit_config(path, format="other-tool")
    with pytest.raises(ValueError, match="'other-tool'"):
        checkpoint.load(path)


def test_missing_config_field_rejected(saved):
    _, path = saved
    config = json.loads((path / "config.json").read_text())
    del config["architecture"]
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"is missing the fields \['architecture'\]"):
        checkpoint.load(path)


def test_wrong_config_field_type_rejected(saved):
    _, path = saved
    _edit_config(path, arguments=[1, 2])
    with pytest.raises(ValueError, match=r"arguments must be an object, got \[1, 2\]"):
        checkpoint.load(path)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"classes": ["a", "b"]}, "classes must be a list of num_classes=10 names, got ['a', 'b']"),
        ({"num_classes": 0}, "num_classes must be a positive int, got 0"),
        ({"input_size": [28]}, "input_size must be [height, width] in pixels, got [28]"),
        ({"normalization": {"mean": [0.0]}}, "normalization must be an object with mean and std"),
        ({"quantization": {"arguments": {}}}, "quantization must be null or an object with a method name"),
        ({"weights_sha256": "abc"}, "weights_sha256 must be 64 lowercase hex digits, got 'abc'"),
        ({"weights_sha256": "z" * 64}, "weights_sha256 must be 64 lowercase hex digits"),
        ({"weights_bytes": -1}, "weights_bytes must be a non-negative int, got -1"),
        ({"plugin": "test-components"}, "plugin must be null or an object with a name, got 'test-components'"),
    ],
)
def test_invalid_config_values_rejected(saved, changes, fragment):
    _, path = saved
    _edit_config(path, **changes)
    with pytest.raises(ValueError, match=re.escape(fragment)):
        checkpoint.load(path)


def test_unknown_architecture_rejected(saved):
    _, path = saved
    _edit_config(path, architecture="no_such_net")
    with pytest.raises(ValueError, match="Unknown architecture 'no_such_net'"):
        checkpoint.load(path)


def test_misspelled_architecture_suggests_name(saved):
    _, path = saved
    _edit_config(path, architecture="tiny_cn")
    with pytest.raises(ValueError) as info:
        checkpoint.load(path)
    message = str(info.value)
    assert str(path / "config.json") in message
    assert "Unknown architecture 'tiny_cn'. Did you mean 'tiny_cnn'" in message


def test_missing_and_unexpected_keys_listed(saved):
    model, path = saved
    tensors = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    del tensors["classifier.bias"]
    tensors["extra.weight"] = torch.zeros(2)
    _rewrite_weights(path, tensors)
    with pytest.raises(ValueError, match=r"missing keys \['classifier.bias'\], unexpected keys \['extra.weight'\]"):
        checkpoint.load(path)


def test_shape_mismatch_listed(saved):
    _, path = saved
    _edit_config(path, arguments={"in_channels": 1, "num_classes": 10, "width": 5})
    _rewrite_weights(path, {name: tensor.clone() for name, tensor in _tiny(seed=1).state_dict().items()})
    with pytest.raises(ValueError, match=r"block.weight \(4, 1, 3, 3\) vs \(5, 1, 3, 3\)"):
        checkpoint.load(path)


def test_quantized_checkpoint_without_quantizer_rejected(test_components, tmp_path):
    quantized = fcnnzoo.create_quantizer("test_half").quantize(_tiny())
    path = checkpoint.save(quantized, tmp_path / "q")
    _edit_config(path, quantization={"method": "no_such_method", "arguments": {}})
    with pytest.raises(ValueError, match="Unknown quantizer 'no_such_method'"):
        checkpoint.load(path)


# -- saving invalid models and metadata ------------------------------------------------


def test_model_without_config_rejected(tmp_path):
    with pytest.raises(ValueError, match="Linear.*fcnnzoo.create_model"):
        checkpoint.save(nn.Linear(2, 2), tmp_path / "plain")
    assert not (tmp_path / "plain").exists()


def test_class_count_mismatch_rejected(test_components, tmp_path):
    with pytest.raises(ValueError, match="10 outputs but 2 class names"):
        checkpoint.save(_tiny(), tmp_path / "x", classes=["a", "b"])


@pytest.mark.parametrize(("mean", "std", "fragment"), [([0.1, 0.2], [1.0], "mean must have 1 finite"), ([0.1], [0.0], "must be positive")])
def test_bad_normalization_rejected(test_components, tmp_path, mean, std, fragment):
    with pytest.raises(ValueError, match=fragment):
        checkpoint.save(_tiny(), tmp_path / "x", mean=mean, std=std)


@pytest.mark.parametrize("name", ["config.json", "model.safetensors", "../escape.json", "sub/x.json", ".hidden.json", ""])
def test_bad_extra_file_name_rejected(test_components, tmp_path, name):
    with pytest.raises(ValueError, match="extra file name"):
        checkpoint.save(_tiny(), tmp_path / "x", extra_files={name: {}})
    assert not (tmp_path / "x").exists()


def test_non_json_metadata_rejected(test_components, tmp_path):
    with pytest.raises(TypeError, match="metrics.json"):
        checkpoint.save(_tiny(), tmp_path / "x", extra_files={"metrics.json": {"value": object()}})


def test_non_tensor_state_rejected(test_components):
    class WithExtraState(nn.Module):
        def get_extra_state(self):
            return {"note": "not a tensor"}

        def set_extra_state(self, state):
            pass

    model = _tiny()
    model.extra = WithExtraState()
    with pytest.raises(TypeError, match="'extra._extra_state' is a dict"):
        checkpoint.prepare(model)


# -- output folder and atomic writes -------------------------------------------------------


def test_output_path_that_is_a_file_rejected(test_components, tmp_path):
    target = tmp_path / "taken"
    target.write_text("data")
    with pytest.raises(FileExistsError, match="taken is an existing file"):
        checkpoint.save(_tiny(), target)
    assert target.read_text() == "data"


def test_foreign_nonempty_folder_rejected(test_components, tmp_path):
    target = tmp_path / "photos"
    target.mkdir()
    (target / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(FileExistsError, match="not an fcnnzoo checkpoint"):
        checkpoint.save(_tiny(), target)
    assert (target / "cat.jpg").read_bytes() == b"meow"


def test_empty_folder_accepted(test_components, tmp_path):
    target = tmp_path / "empty"
    target.mkdir()
    checkpoint.save(_tiny(), target)
    assert (target / "model.safetensors").is_file()


def test_missing_parents_created(test_components, tmp_path):
    path = checkpoint.save(_tiny(), tmp_path / "a" / "b" / "ckpt")
    assert (path / "config.json").is_file()


def test_existing_checkpoint_replaced(saved):
    _, path = saved
    (path / "stale.json").write_text("{}")
    replacement = _tiny(seed=9)
    checkpoint.save(replacement, path)
    assert torch.equal(_outputs(checkpoint.load(path)), _outputs(replacement))
    assert not (path / "stale.json").exists()
    assert _hidden_entries(path.parent) == []


def test_crash_while_writing_keeps_previous_checkpoint(saved, monkeypatch):
    original, path = saved
    real_write = checkpoint._write_bytes

    def write_half_then_fail(target: Path, data: bytes) -> None:
        if target.name == checkpoint.WEIGHTS_FILE:
            real_write(target, data[: len(data) // 2])
            raise OSError(28, "No space left on device")
        real_write(target, data)

    monkeypatch.setattr(checkpoint, "_write_bytes", write_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save(_tiny(seed=5), path)
    monkeypatch.undo()

    assert torch.equal(_outputs(checkpoint.load(path)), _outputs(original))
    assert _hidden_entries(path.parent) == []


def test_crash_in_safetensors_writer_keeps_previous_checkpoint(saved, monkeypatch):
    original, path = saved

    def fail(*args, **kwargs):
        raise MemoryError("out of memory while serializing")

    monkeypatch.setattr("safetensors.torch.save", fail)
    with pytest.raises(MemoryError):
        checkpoint.save(_tiny(seed=5), path)
    monkeypatch.undo()

    assert torch.equal(_outputs(checkpoint.load(path)), _outputs(original))
    assert _hidden_entries(path.parent) == []


def test_crash_while_writing_config_keeps_previous_checkpoint(saved, monkeypatch):
    original, path = saved
    real_write = checkpoint._write_bytes

    def fail_on_config(target: Path, data: bytes) -> None:
        if target.name == checkpoint.CONFIG_FILE:
            real_write(target, data[:10])
            raise OSError(28, "No space left on device")
        real_write(target, data)

    monkeypatch.setattr(checkpoint, "_write_bytes", fail_on_config)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save(_tiny(seed=5), path)
    monkeypatch.undo()

    assert torch.equal(_outputs(checkpoint.load(path)), _outputs(original))
    assert _hidden_entries(path.parent) == []


def test_crash_during_swap_restores_previous_checkpoint(saved, monkeypatch):
    original, path = saved
    real_replace = checkpoint.os.replace

    def fail_on_staging(source, target):
        if ".tmp-" in str(source):
            raise OSError(5, "Input/output error")
        real_replace(source, target)

    monkeypatch.setattr(checkpoint.os, "replace", fail_on_staging)
    with pytest.raises(OSError, match="Input/output error"):
        checkpoint.save(_tiny(seed=5), path)
    monkeypatch.undo()

    assert torch.equal(_outputs(checkpoint.load(path)), _outputs(original))
    assert _hidden_entries(path.parent) == []


def test_crash_on_first_write_leaves_nothing(test_components, tmp_path, monkeypatch):
    def fail(target: Path, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "_write_bytes", fail)
    with pytest.raises(OSError):
        checkpoint.save(_tiny(), tmp_path / "new")
    assert list(tmp_path.iterdir()) == []


def test_write_json_atomic_replaces_file(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text('{"old": true}')
    checkpoint.write_json_atomic(target, {"new": 1})
    assert json.loads(target.read_text()) == {"new": 1}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["metrics.json"]


def test_write_json_atomic_rejects_non_json(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text('{"old": true}')
    with pytest.raises(TypeError, match="metrics.json"):
        checkpoint.write_json_atomic(target, {"value": float("nan")})
    assert json.loads(target.read_text()) == {"old": True}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["metrics.json"]
