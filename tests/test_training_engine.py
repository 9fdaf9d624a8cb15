"""Tests of the optimizer and schedule choices, early stopping, history files and exact resume."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from fcnnzoo.training import evaluate
from fcnnzoo.training import resolve_optimizer_settings
from fcnnzoo.training import train
from fcnnzoo.training import history as history_files
from fcnnzoo.workflows import train_to_checkpoint


@pytest.fixture
def one_thread():
    """Run on one thread, so the results do not depend on the machine's core count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _tiny_model(seed: int = 0) -> torch.nn.Module:
    from conftest import TinyCNN

    torch.manual_seed(seed)
    return TinyCNN(in_channels=1, num_classes=2)


def _settings(**overrides):
    arguments = dict(optimizer="adam", lr=1e-3, momentum=None, weight_decay=None, schedule="cosine", step_size=None, gamma=None, epochs=9)
    arguments.update(overrides)
    return resolve_optimizer_settings(**arguments)


# -- optimizer and schedule settings ----------------------------------------------


def test_settings_fill_optimizer_defaults():
    assert _settings(optimizer="sgd").momentum == 0.9
    assert _settings(optimizer="adam").momentum is None
    assert _settings(optimizer="adam").weight_decay == 0.0
    assert _settings(optimizer="adamw").weight_decay == 0.01
    assert _settings(optimizer="sgd", weight_decay=5e-4).weight_decay == 5e-4


def test_settings_fill_step_defaults():
    settings = _settings(schedule="step", epochs=9)
    assert settings.step_size == 3
    assert settings.gamma == 0.1
    assert _settings(schedule="step", epochs=2).step_size == 1
    assert _settings(schedule="cosine").step_size is None


@pytest.mark.parametrize(
    ("overrides", "error", "fragment"),
    [
        ({"optimizer": "adamm"}, ValueError, "Unknown optimizer 'adamm' in --optimizer. Did you mean 'adam'?"),
        ({"optimizer": "rmsprop"}, ValueError, "Use one of adam, adamw, sgd"),
        ({"schedule": "cosin"}, ValueError, "Unknown learning-rate schedule 'cosin' in --schedule. Did you mean 'cosine'?"),
        ({"weight_decay": -0.1}, ValueError, "weight_decay must be a non-negative finite number, got -0.1"),
        ({"weight_decay": math.nan}, ValueError, "weight_decay must be a non-negative finite number, got nan"),
        ({"momentum": 0.9}, ValueError, "momentum=0.9 applies only to the sgd optimizer, not 'adam'"),
        ({"optimizer": "adamw", "momentum": 0.5}, ValueError, "not 'adamw'"),
        ({"optimizer": "sgd", "momentum": 1.0}, ValueError, "momentum must be in [0, 1), got 1"),
        ({"schedule": "step", "step_size": 0}, ValueError, "step_size must be a positive number of epochs, got 0"),
        ({"schedule": "step", "gamma": 1.5}, ValueError, "gamma must be in (0, 1], got 1.5"),
        ({"gamma": 0.5}, ValueError, "gamma applies only to the 'step' schedule, not 'cosine'"),
        ({"optimizer": 3}, TypeError, "optimizer must be a name"),
        ({"weight_decay": "0.1"}, TypeError, "weight_decay must be a number, got '0.1'"),
    ],
)
def test_settings_reject_bad_values(overrides, error, fragment):
    with pytest.raises(error) as info:
        _settings(**overrides)
    assert fragment in str(info.value)


def test_sgd_momentum_matches_torch(synthetic):
    model = _tiny_model()
    reference = _tiny_model()
    train(model, synthetic, epochs=1, optimizer="sgd", momentum=0.5, weight_decay=1e-3, lr=0.05, schedule="constant",
          label_smoothing=0.0, batch_size=len(synthetic.train), progress=False, evaluate_each_epoch=False)

    # One full batch: a single SGD step from the same initial weights.
    images, labels = synthetic.train.tensors
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.05, momentum=0.5, weight_decay=1e-3)
    torch.nn.functional.cross_entropy(reference(images), labels).backward()
    optimizer.step()
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value, rtol=1e-5, atol=1e-6, msg=name)


def test_adamw_decays_weights_without_gradient(synthetic):
    decayed = _tiny_model()
    plain = _tiny_model()
    common = dict(epochs=1, lr=1e-3, schedule="constant", progress=False, evaluate_each_epoch=False, seed=0)
    train(decayed, synthetic, optimizer="adamw", weight_decay=0.5, **common)
    train(plain, synthetic, optimizer="adamw", weight_decay=0.0, **common)
    assert decayed.classifier.weight.norm() < plain.classifier.weight.norm()


def test_step_schedule_decays_per_epoch(synthetic):
    result = train(_tiny_model(), synthetic, epochs=5, lr=0.01, schedule="step", step_size=2, gamma=0.5,
                   progress=False, evaluate_each_epoch=False)
    assert [record.lr for record in result.history] == pytest.approx([0.01, 0.01, 0.005, 0.005, 0.0025])
    assert result.settings.step_size == 2


# -- early stopping -----------------------------------------------------------------


def test_early_stopping_needs_validation(synthetic):
    with pytest.raises(ValueError, match="Early stopping \\(patience 2\\) watches the validation loss, but there is no validation split"):
        train(_tiny_model(), synthetic, epochs=3, early_stopping=2, progress=False)


def test_early_stopping_after_patience(synthetic):
    from fcnnzoo.data import with_validation

    splits = with_validation(synthetic, 0.25)
    # A near-zero learning rate after epoch 1 keeps the validation loss flat, so epochs 2 and 3 bring no improvement.
    result = train(_tiny_model(), splits, epochs=10, lr=0.05, schedule="step", step_size=1, gamma=1e-30,
                   early_stopping=2, progress=False)
    assert result.stopped_early
    assert result.epochs == 3
    assert all(record.validation_loss is not None for record in result.history)
    assert result.metrics()["stopped_early"] is True


def test_validation_is_recorded_per_epoch(synthetic):
    from fcnnzoo.data import with_validation

    splits = with_validation(synthetic, 0.25)
    model = _tiny_model()
    result = train(model, splits, epochs=2, progress=False)
    measured = evaluate(model, splits.validation)
    assert result.history[-1].validation_accuracy == measured.accuracy
    assert result.history[-1].validation_loss == measured.loss
    assert result.history[0].validation_loss is not None


# -- history files --------------------------------------------------------------------


def test_history_files_match_run(test_components, tmp_path):
    out = tmp_path / "run"
    report = train_to_checkpoint("tiny_cnn", out, epochs=3, dataset="synthetic", validation_fraction=0.25, progress=False)
    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert history[-1]["test_accuracy"] == report["test_accuracy"]
    assert history[-1]["validation_accuracy"] == report["validation_accuracy"]

    with open(out / "history.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert list(rows[0]) == list(history_files.CSV_COLUMNS)
    for row, record in zip(rows, history, strict=True):
        for column in history_files.CSV_COLUMNS:
            assert float(row[column]) == record[column], column
    assert (out / "training-curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_curve_skipped_without_matplotlib(test_components, tmp_path, monkeypatch, caplog):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with caplog.at_level("INFO", logger="fcnnzoo.training.history"):
        train_to_checkpoint("tiny_cnn", tmp_path / "run", epochs=1, dataset="synthetic", progress=False)
    assert not (tmp_path / "run" / "training-curve.png").exists()
    assert (tmp_path / "run" / "history.csv").exists()
    assert "matplotlib is not installed" in caplog.text


# -- resume -----------------------------------------------------------------------------


class Interrupt(Exception):
    """Ends a run from the epoch callback, as a crash or Ctrl-C would."""


def _interrupt_after(epoch: int):
    def callback(record) -> None:
        if record.epoch == epoch:
            raise Interrupt

    return callback


RESUME_OPTIONS = dict(
    epochs=4,
    dataset="synthetic",
    seed=3,
    batch_size=16,
    validation_fraction=0.25,
    optimizer="sgd",
    schedule="cosine",
    weight_decay=1e-4,
    augment=[("rotate", {"degrees": 10, "seed": 5}), ("translate", {"max_shift": 2}), ("random_erasing", {"p": 0.5})],
    progress=False,
)


def _without_timings(history: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key != "seconds"} for row in history]


@pytest.mark.parametrize("schedule", ["cosine", "step"])
def test_resume_matches_uninterrupted_run(test_components, tmp_path, one_thread, schedule):
    options = {**RESUME_OPTIONS, "schedule": schedule}
    straight = train_to_checkpoint("tiny_cnn", tmp_path / "straight", **options)

    with pytest.raises(Interrupt):
        train_to_checkpoint("tiny_cnn", tmp_path / "split", on_epoch_end=_interrupt_after(2), **options)
    assert json.loads((tmp_path / "split" / "resume.json").read_text())["epoch"] == 2
    assert not (tmp_path / "split" / "metrics.json").exists()
    resumed = train_to_checkpoint("tiny_cnn", tmp_path / "split", resume=tmp_path / "split", **options)

    straight_weights = load_file(tmp_path / "straight" / "model.safetensors")
    resumed_weights = load_file(tmp_path / "split" / "model.safetensors")
    assert straight_weights.keys() == resumed_weights.keys()
    for name, value in straight_weights.items():
        assert torch.equal(resumed_weights[name], value), name
    straight_history = json.loads((tmp_path / "straight" / "history.json").read_text())
    resumed_history = json.loads((tmp_path / "split" / "history.json").read_text())
    assert _without_timings(resumed_history) == _without_timings(straight_history)
    for report in (straight, resumed):
        report.pop("train_seconds")
        report.pop("checkpoint")
    assert resumed == straight


def test_resume_into_new_folder(test_components, tmp_path, one_thread):
    options = {**RESUME_OPTIONS, "augment": [], "epochs": 2}
    straight = train_to_checkpoint("tiny_cnn", tmp_path / "straight", **options)
    with pytest.raises(Interrupt):
        train_to_checkpoint("tiny_cnn", tmp_path / "first", on_epoch_end=_interrupt_after(1), **options)
    resumed = train_to_checkpoint("tiny_cnn", tmp_path / "second", resume=tmp_path / "first", **options)
    assert resumed["test_loss"] == straight["test_loss"]
    assert json.loads((tmp_path / "first" / "resume.json").read_text())["epoch"] == 1


def test_resume_rejects_folder_without_state(test_components, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no resume state \\(resume.json is missing\\)"):
        train_to_checkpoint("tiny_cnn", tmp_path / "out", resume=tmp_path / "empty", epochs=1, dataset="synthetic", progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train_to_checkpoint("tiny_cnn", tmp_path / "out", resume=tmp_path / "missing", epochs=1, dataset="synthetic", progress=False)
    assert not (tmp_path / "out").exists()


def test_resume_rejects_changed_options(test_components, tmp_path):
    options = {**RESUME_OPTIONS, "augment": [], "epochs": 2}
    with pytest.raises(Interrupt):
        train_to_checkpoint("tiny_cnn", tmp_path / "run", on_epoch_end=_interrupt_after(1), **options)
    with pytest.raises(ValueError, match="it was trained with lr=0.002, but this run has lr=0.01"):
        train_to_checkpoint("tiny_cnn", tmp_path / "run", resume=tmp_path / "run", **{**options, "lr": 0.01})
    with pytest.raises(ValueError, match="it was trained with epochs=2, but this run has epochs=3"):
        train_to_checkpoint("tiny_cnn", tmp_path / "run", resume=tmp_path / "run", **{**options, "epochs": 3})


def test_resume_rejects_finished_run(test_components, tmp_path):
    options = {**RESUME_OPTIONS, "augment": [], "epochs": 1}
    train_to_checkpoint("tiny_cnn", tmp_path / "run", **options)
    with pytest.raises(ValueError, match="has already finished after epoch 1 of 1"):
        train_to_checkpoint("tiny_cnn", tmp_path / "run", resume=tmp_path / "run", **options)


def test_resume_rejects_changed_tensors(test_components, tmp_path):
    options = {**RESUME_OPTIONS, "augment": [], "epochs": 2}
    with pytest.raises(Interrupt):
        train_to_checkpoint("tiny_cnn", tmp_path / "run", on_epoch_end=_interrupt_after(1), **options)
    tensors = tmp_path / "run" / "resume.safetensors"
    data = bytearray(tensors.read_bytes())
    data[-1] ^= 0xFF
    tensors.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match the sha256 recorded in"):
        train_to_checkpoint("tiny_cnn", tmp_path / "run", resume=tmp_path / "run", **options)


def test_resume_state_holds_no_pickle(test_components, tmp_path):
    train_to_checkpoint("tiny_cnn", tmp_path / "run", **{**RESUME_OPTIONS, "epochs": 1})
    names = sorted(path.name for path in (tmp_path / "run").iterdir())
    assert names == [
        "config.json", "history.csv", "history.json", "metrics.json", "model.safetensors",
        "resume.json", "resume.safetensors", "training-curve.png",
    ]
    tensors = load_file(tmp_path / "run" / "resume.safetensors")
    assert {"generator/torch", "generator/shuffle", "generator/augment", "generator/augmenter.0"} <= set(tensors)
    assert "generator/augmenter.1" in tensors  # translate has its own generator even without a seed
    assert any(name.startswith("optimizer/0/momentum_buffer") for name in tensors)
