"""Tests of the training loop, evaluation and the train-to-checkpoint workflow."""

from __future__ import annotations

import json
import logging
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

import fcnnzoo
from fcnnzoo.training import EVAL_BATCH_SIZE
from fcnnzoo.training import evaluate
from fcnnzoo.training import train
from fcnnzoo.training.metrics import ClassificationMeter
from fcnnzoo.training.metrics import count_parameters
from fcnnzoo.workflows import train_to_checkpoint


class FixedLogits(nn.Module):
    """Returns the same logits for every image, and records the mode it ran in."""

    def __init__(self, logits: list[float]) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.tensor(logits))
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.training, torch.is_grad_enabled()))
        return self.logits.expand(x.shape[0], -1)


class RecordingAugmenter:
    """Adds nothing to the images and records the batch sizes and generators it saw."""

    name = "recording"

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []
        self.generators: list[object] = []

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        self.batch_sizes.append(images.shape[0])
        self.generators.append(generator)
        return images + 0.0


def _tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    from conftest import TinyCNN

    return TinyCNN(in_channels=1, num_classes=2)


# -- metrics -------------------------------------------------------------------


def test_meter_accumulates_over_batches():
    meter = ClassificationMeter()
    meter.update(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]), torch.tensor(3.0))
    meter.update(torch.tensor([[0.0, 5.0]]), torch.tensor([1]), torch.tensor(1.0))
    assert meter.count == 3
    assert meter.correct == 2
    assert meter.accuracy == pytest.approx(2 / 3)
    assert meter.loss == pytest.approx(4 / 3)


def test_meter_empty_is_nan():
    meter = ClassificationMeter()
    assert math.isnan(meter.loss)
    assert math.isnan(meter.accuracy)


def test_count_parameters_counts_elements():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2, bias=False))
    assert count_parameters(model) == 3 * 4 + 4 + 4 * 2


# -- evaluate ------------------------------------------------------------------


def test_evaluate_known_loss_and_accuracy():
    labels = torch.tensor([0, 1, 1, 2, 1])
    dataset = TensorDataset(torch.zeros(5, 1, 2, 2), labels)
    model = FixedLogits([0.5, 2.0, -1.0])
    result = evaluate(model, dataset, batch_size=2)
    expected_loss = F.cross_entropy(torch.tensor([[0.5, 2.0, -1.0]]).expand(5, -1), labels).item()
    assert result.count == 5
    assert result.accuracy == pytest.approx(3 / 5)
    assert result.loss == pytest.approx(expected_loss, rel=1e-6)


def test_evaluate_runs_eval_mode_without_grad():
    model = FixedLogits([0.0, 1.0])
    model.train()
    evaluate(model, TensorDataset(torch.zeros(3, 1, 2, 2), torch.tensor([0, 1, 1])), batch_size=2)
    assert model.calls == [(False, False), (False, False)]
    assert model.training is True


def test_evaluate_batch_size_does_not_change_result(synthetic):
    model = _tiny_model()
    small = evaluate(model, synthetic.test, batch_size=3)
    large = evaluate(model, synthetic.test, batch_size=EVAL_BATCH_SIZE)
    assert small.accuracy == large.accuracy
    assert small.loss == pytest.approx(large.loss, rel=1e-5)


def test_evaluate_rejects_empty_dataset():
    with pytest.raises(ValueError, match="empty"):
        evaluate(FixedLogits([0.0]), TensorDataset(torch.zeros(0, 1, 2, 2), torch.zeros(0, dtype=torch.int64)))


# -- train ---------------------------------------------------------------------


def test_train_learns_synthetic_task(synthetic):
    model = _tiny_model()
    before = evaluate(model, synthetic.test)
    result = train(model, synthetic, epochs=5, batch_size=16, lr=1e-2, seed=0, progress=False)
    assert result.test.accuracy >= 0.95
    assert result.test.loss < before.loss
    assert model.training is False


def test_train_history_and_metrics(synthetic):
    result = train(_tiny_model(), synthetic, epochs=3, batch_size=16, lr=1e-3, schedule="constant", seed=0, progress=False)
    assert [record.epoch for record in result.history] == [1, 2, 3]
    assert result.epochs == 3
    last = result.history[-1]
    assert last.test_accuracy == result.test.accuracy
    assert last.test_loss == result.test.loss
    assert all(record.lr == pytest.approx(1e-3) for record in result.history)
    metrics = result.metrics()
    assert metrics["epochs"] == 3
    assert metrics["test_examples"] == len(synthetic.test)
    assert metrics["params"] == count_parameters(_tiny_model())
    assert metrics["train_seconds"] > 0
    json.dumps(metrics)


def test_train_cosine_schedule_anneals_lr(synthetic):
    result = train(_tiny_model(), synthetic, epochs=4, batch_size=16, lr=0.01, schedule="cosine", progress=False)
    # 64 images in batches of 16 make 4 steps per epoch and 16 in all; each record has the lr its epoch started with.
    expected = [0.01 * (1 + math.cos(math.pi * 4 * (epoch - 1) / 16)) / 2 for epoch in range(1, 5)]
    assert [record.lr for record in result.history] == pytest.approx(expected)


def test_train_reports_plain_test_loss(synthetic):
    model = _tiny_model()
    result = train(model, synthetic, epochs=1, batch_size=16, label_smoothing=0.5, progress=False)
    assert result.test == evaluate(model, synthetic.test)


def test_train_label_smoothing_changes_training(synthetic):
    smoothed = _tiny_model()
    plain = _tiny_model()
    train(smoothed, synthetic, epochs=1, batch_size=16, label_smoothing=0.3, progress=False)
    train(plain, synthetic, epochs=1, batch_size=16, label_smoothing=0.0, progress=False)
    assert not torch.equal(smoothed.block.weight, plain.block.weight)


def test_train_without_per_epoch_evaluation(synthetic):
    result = train(_tiny_model(), synthetic, epochs=2, batch_size=16, seed=0, progress=False, evaluate_each_epoch=False)
    assert result.history[0].test_accuracy is None
    assert result.history[1].test_loss is None
    assert result.test.count == len(synthetic.test)


def test_train_is_reproducible(synthetic):
    first_model = _tiny_model(seed=5)
    second_model = _tiny_model(seed=5)
    first = train(first_model, synthetic, epochs=2, batch_size=8, seed=3, progress=False)
    second = train(second_model, synthetic, epochs=2, batch_size=8, seed=3, progress=False)
    for name, tensor in first_model.state_dict().items():
        assert torch.equal(tensor, second_model.state_dict()[name]), name
    assert [r.train_loss for r in first.history] == [r.train_loss for r in second.history]
    assert first.test == second.test


def test_train_seed_changes_batch_order(synthetic):
    first_model = _tiny_model(seed=5)
    second_model = _tiny_model(seed=5)
    train(first_model, synthetic, epochs=1, batch_size=8, seed=1, progress=False)
    train(second_model, synthetic, epochs=1, batch_size=8, seed=2, progress=False)
    assert not torch.equal(first_model.block.weight, second_model.block.weight)


def test_train_applies_augmenters_to_training_batches_only(synthetic):
    first = RecordingAugmenter()
    second = RecordingAugmenter()
    train(_tiny_model(), synthetic, epochs=2, batch_size=24, seed=0, augmenters=[first, second], progress=False)
    # 64 train images in batches of 24: 24, 24, 16 per epoch; the 32 test images are never augmented.
    assert first.batch_sizes == [24, 24, 16] * 2
    assert second.batch_sizes == first.batch_sizes
    assert all(isinstance(generator, torch.Generator) for generator in first.generators)


def test_train_augmenter_randomness_follows_seed(synthetic):
    def noise(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return images + torch.randn(images.shape, generator=generator)

    weights = []
    for _ in range(2):
        model = _tiny_model()
        train(model, synthetic, epochs=1, batch_size=16, seed=4, augmenters=[noise], progress=False)
        weights.append(model.block.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])


def test_train_keeps_augmenter_own_seed(synthetic):
    seeded = RecordingAugmenter()
    seeded.seed = 123
    unseeded = RecordingAugmenter()
    unseeded.seed = None
    train(_tiny_model(), synthetic, epochs=1, batch_size=32, seed=0, augmenters=[seeded, unseeded], progress=False)
    assert seeded.generators == [None, None]
    assert all(isinstance(generator, torch.Generator) for generator in unseeded.generators)


def test_train_rejects_augmenter_changing_shape(synthetic):
    def crop(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return images[..., 1:, 1:]

    with pytest.raises(ValueError, match=r"crop must return a torch.float32 tensor of shape \(16, 1, 28, 28\)"):
        train(_tiny_model(), synthetic, epochs=1, batch_size=16, augmenters=[crop], progress=False)


@pytest.mark.parametrize(
    ("arguments", "error", "fragment"),
    [
        ({"epochs": 0}, ValueError, "epochs must be a positive int, got 0"),
        ({"epochs": -2}, ValueError, "got -2"),
        ({"epochs": 1.5}, TypeError, "got 1.5"),
        ({"epochs": True}, TypeError, "got True"),
        ({"batch_size": 0}, ValueError, "batch_size must be a positive int, got 0"),
        ({"lr": 0.0}, ValueError, "lr must be a positive finite number, got 0.0"),
        ({"lr": -0.1}, ValueError, "got -0.1"),
        ({"lr": float("nan")}, ValueError, "got nan"),
        ({"lr": float("inf")}, ValueError, "got inf"),
        ({"lr": "fast"}, TypeError, "got 'fast'"),
        ({"seed": -1}, ValueError, "got -1"),
        ({"seed": 2**63}, ValueError, str(2**63)),
        ({"schedule": "linear"}, ValueError, "schedule 'linear' in --schedule. Use one of constant, cosine, step"),
        ({"label_smoothing": 1.0}, ValueError, "label_smoothing must be in [0, 1), got 1.0"),
        ({"label_smoothing": -0.1}, ValueError, "got -0.1"),
        ({"label_smoothing": "some"}, TypeError, "got 'some'"),
    ],
)
def test_train_rejects_bad_arguments(synthetic, arguments, error, fragment):
    options = {"epochs": 1, "batch_size": 16, "lr": 1e-3, "seed": 0, **arguments}
    with pytest.raises(error, match=re.escape(fragment)):
        train(_tiny_model(), synthetic, progress=False, **options)


def test_train_rejects_model_with_wrong_class_count(synthetic):
    from conftest import TinyCNN

    with pytest.raises(ValueError, match=r"logits of shape \(N, 2\).*got shape \(2, 10\)"):
        train(TinyCNN(num_classes=10), synthetic, epochs=1, progress=False)


def test_train_rejects_model_with_wrong_input_size(synthetic):
    model = nn.Sequential(nn.Flatten(), nn.Linear(10, 2))
    with pytest.raises(ValueError, match=r"cannot process the synthetic images of shape \(1, 28, 28\)"):
        train(model, synthetic, epochs=1, progress=False)


def test_train_reports_divergence(synthetic):
    class Diverging(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = x.flatten(1)[:, :2] * self.scale
            return logits * float("inf") if self.training else logits

    with pytest.raises(ValueError, match=r"diverged.*epoch 1, step 1.*Lower the learning rate \(now 0.5\)"):
        train(Diverging(), synthetic, epochs=1, lr=0.5, progress=False)


def test_train_progress_bar_on_request(synthetic, capsys):
    train(_tiny_model(), synthetic, epochs=1, batch_size=16, progress=True)
    captured = capsys.readouterr()
    assert "train" in captured.err
    assert "0/4" in captured.err
    assert captured.out == ""


def test_train_quiet_when_stderr_is_not_a_terminal(synthetic, capsys):
    train(_tiny_model(), synthetic, epochs=1, batch_size=16, progress=None)
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_train_logs_each_epoch(synthetic, caplog):
    with caplog.at_level(logging.INFO, logger="fcnnzoo.training.engine"):
        train(_tiny_model(), synthetic, epochs=2, batch_size=16, progress=False)
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith("Epoch 1/2: train loss") for message in messages)
    assert any(message.startswith("Epoch 2/2: train loss") for message in messages)


# -- train_to_checkpoint and the reference recipe ----------------------------------


def test_train_to_checkpoint_writes_metrics(test_components, tmp_path):
    out = tmp_path / "run"
    report = train_to_checkpoint("tiny_cnn", out, epochs=1, dataset="synthetic", seed=2, batch_size=16, progress=False)
    metrics = json.loads((out / "metrics.json").read_text())
    assert report == {**metrics, "checkpoint": str(out.absolute())}
    for key in ("model", "dataset", "epochs", "test_accuracy", "test_loss", "train_seconds", "params"):
        assert key in metrics, key
    assert metrics["model"] == "tiny_cnn"
    assert metrics["dataset"] == "synthetic"
    assert metrics["epochs"] == 1
    assert metrics["seed"] == 2
    assert metrics["batch_size"] == 16
    assert metrics["schedule"] == "cosine"
    assert metrics["label_smoothing"] == 0.1
    assert metrics["params"] == count_parameters(fcnnzoo.create_model("tiny_cnn", num_classes=2))
    config = json.loads((out / "config.json").read_text())
    assert config["classes"] == ["left", "right"]
    assert config["dataset"] == "synthetic"


def test_train_to_checkpoint_initial_weights_follow_seed(test_components, tmp_path):
    first = train_to_checkpoint("tiny_cnn", tmp_path / "a", epochs=1, dataset="synthetic", seed=7, progress=False)
    second = train_to_checkpoint("tiny_cnn", tmp_path / "b", epochs=1, dataset="synthetic", seed=7, progress=False)
    assert first["test_loss"] == second["test_loss"]
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()


def test_train_to_checkpoint_checks_out_before_training(test_components, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("keep me")
    with pytest.raises(FileExistsError, match="file.txt"):
        train_to_checkpoint("tiny_cnn", blocker, epochs=1, dataset="synthetic", progress=False)
    assert blocker.read_text() == "keep me"


def test_train_to_checkpoint_rejects_unknown_names(test_components, tmp_path):
    with pytest.raises(ValueError, match="Unknown architecture 'tiny_cn'"):
        train_to_checkpoint("tiny_cn", tmp_path / "x", epochs=1, dataset="synthetic", progress=False)
    with pytest.raises(ValueError, match="Unknown dataset 'synthetik'"):
        train_to_checkpoint("tiny_cnn", tmp_path / "x", epochs=1, dataset="synthetik", progress=False)
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_fcnn_reaches_97_percent_on_digits(fcnn_run):
    assert fcnn_run["model"] == "fcnn"
    assert fcnn_run["dataset"] == "digits"
    assert fcnn_run["epochs"] <= 10
    assert fcnn_run["test_examples"] == 360
    assert fcnn_run["test_accuracy"] >= 0.97


@pytest.mark.slow
def test_fcnn_metrics_file_matches_report(fcnn_run):
    metrics = json.loads((fcnn_run["path"] / "metrics.json").read_text())
    assert metrics["test_accuracy"] == fcnn_run["test_accuracy"]
    assert metrics["test_loss"] == fcnn_run["test_loss"]
    assert metrics["params"] == fcnnzoo.model_info("fcnn")["params"]
