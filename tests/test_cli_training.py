"""Tests of the training options of 'fcnnzoo train': optimizers, schedules, early stopping and resume."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from fcnnzoo import cli
from test_cli import assert_usage_error
from test_cli import run


def test_train_sgd_step_schedule_records_recipe(test_components, tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, stderr = run(
        capsys, "train", "tiny_cnn", "--dataset", "synthetic", "--epochs", "3", "--out", out, "--json",
        "--optimizer", "sgd", "--momentum", "0.8", "--weight-decay", "1e-4", "--schedule", "step", "--step-size", "1",
        "--gamma", "0.5", "--lr", "0.02",
    )
    assert code == 0, stderr
    metrics = json.loads(stdout)
    assert metrics["optimizer"] == "sgd"
    assert metrics["momentum"] == 0.8
    assert metrics["weight_decay"] == 1e-4
    assert metrics["schedule"] == "step"
    assert metrics["step_size"] == 1
    assert metrics["gamma"] == 0.5
    history = json.loads((out / "history.json").read_text())
    assert [row["lr"] for row in history] == pytest.approx([0.02, 0.01, 0.005])


def test_train_early_stopping_reports_stop(test_components, tmp_path, capsys):
    # With a near-zero rate after epoch 1 the validation loss stops falling, so patience 1 ends the run after epoch 2.
    code, stdout, stderr = run(
        capsys, "train", "tiny_cnn", "--dataset", "synthetic", "--epochs", "6", "--out", tmp_path / "run",
        "--validation-fraction", "0.25", "--early-stopping", "1", "--schedule", "step", "--step-size", "1", "--gamma", "1e-30",
    )
    assert code == 0, stderr
    assert "Stopped early after epoch 2" in stdout
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())) == 2


def test_train_resume_continues_run(test_components, tmp_path, capsys, monkeypatch):
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        arguments = ["train", "tiny_cnn", "--dataset", "synthetic", "--epochs", "3", "--seed", "4", "--augment", "translate"]
        assert run(capsys, *arguments, "--out", tmp_path / "straight")[0] == 0

        from fcnnzoo.training import resume as resume_files

        real_write_state = resume_files.write_state

        def write_then_crash(directory, state, options):
            real_write_state(directory, state, options)
            if state.epoch == 1:
                raise KeyboardInterrupt

        monkeypatch.setattr(resume_files, "write_state", write_then_crash)
        code, _, stderr = run(capsys, *arguments, "--out", tmp_path / "split")
        assert code == 130, stderr
        monkeypatch.setattr(resume_files, "write_state", real_write_state)

        code, _, stderr = run(capsys, *arguments, "--resume", tmp_path / "split")
        assert code == 0, stderr
    finally:
        torch.set_num_threads(previous)
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(tmp_path / "split" / "model.safetensors")
    for name, value in straight.items():
        assert torch.equal(resumed[name], value), name


@pytest.mark.parametrize(
    ("arguments", "fragments"),
    [
        (["--optimizer", "adamm"], ["Unknown optimizer 'adamm'", "Did you mean 'adam'?"]),
        (["--optimizer", "sdg"], ["Unknown optimizer 'sdg'", "Did you mean 'sgd'?"]),
        (["--schedule", "cosin"], ["Unknown learning-rate schedule 'cosin'", "Did you mean 'cosine'?"]),
        (["--weight-decay", "-0.01"], ["weight_decay must be a non-negative finite number, got -0.01"]),
        (["--momentum", "0.9"], ["momentum=0.9 applies only to the sgd optimizer, not 'adam'"]),
        (["--optimizer", "adamw", "--momentum", "0.9"], ["not 'adamw'", "--optimizer sgd"]),
        (["--early-stopping", "3"], ["Early stopping (patience 3)", "--validation-fraction"]),
        (["--early-stopping", "0"], ["--early-stopping", "expected a positive integer, got '0'"]),
        (["--gamma", "0.5"], ["gamma applies only to the 'step' schedule"]),
        (["--momentum", "fast"], ["--momentum", "invalid float value: 'fast'"]),
    ],
)
def test_train_rejects_bad_training_options(test_components, tmp_path, capsys, arguments, fragments):
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, "train", "tiny_cnn", "--dataset", "synthetic", "--epochs", "1", "--out", out, *arguments)
    assert_usage_error(code, stdout, stderr, *fragments)
    assert not out.exists()


def test_train_needs_out_or_resume(test_components, capsys):
    code, stdout, stderr = run(capsys, "train", "tiny_cnn", "--dataset", "synthetic", "--epochs", "1")
    assert_usage_error(code, stdout, stderr, "train needs --out DIR")


def test_train_resume_rejects_folder_without_state(test_components, tmp_path, capsys):
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a run")
    code, stdout, stderr = run(capsys, "train", "tiny_cnn", "--dataset", "synthetic", "--epochs", "1", "--resume", folder)
    assert_usage_error(code, stdout, stderr, str(folder), "has no resume state (resume.json is missing)")
    assert sorted(path.name for path in folder.iterdir()) == ["notes.txt"]


def test_train_resume_rejects_missing_folder(test_components, tmp_path, capsys):
    missing = tmp_path / "missing"
    code, stdout, stderr = run(capsys, "train", "tiny_cnn", "--dataset", "synthetic", "--epochs", "1", "--resume", missing)
    assert_usage_error(code, stdout, stderr, f"Resume folder {missing} does not exist")


def test_train_resume_rejects_changed_options(test_components, tmp_path, capsys, monkeypatch):
    arguments = ["train", "tiny_cnn", "--dataset", "synthetic", "--epochs", "2", "--out", tmp_path / "run"]
    stop_after_first_epoch(monkeypatch)
    assert run(capsys, *arguments)[0] == 130

    code, stdout, stderr = run(capsys, *arguments, "--resume", tmp_path / "run", "--batch-size", "8")
    assert_usage_error(code, stdout, stderr, "it was trained with batch_size=32, but this run has batch_size=8")
    code, stdout, stderr = run(capsys, *arguments, "--resume", tmp_path / "run", "--optimizer", "adamw")
    assert_usage_error(code, stdout, stderr, "it was trained with optimizer='adam', but this run has optimizer='adamw'")
    assert json.loads((tmp_path / "run" / "resume.json").read_text())["epoch"] == 1


def test_train_resume_rejects_changed_state_file(test_components, tmp_path, capsys, monkeypatch):
    arguments = ["train", "tiny_cnn", "--dataset", "synthetic", "--epochs", "2", "--out", tmp_path / "run"]
    stop_after_first_epoch(monkeypatch)
    assert run(capsys, *arguments)[0] == 130
    (tmp_path / "run" / "resume.json").write_text("{not json")
    code, stdout, stderr = run(capsys, *arguments, "--resume", tmp_path / "run")
    assert_usage_error(code, stdout, stderr, "resume.json is not valid JSON")


def stop_after_first_epoch(monkeypatch) -> None:
    """Make the next run end with Ctrl-C right after its first epoch's state is written."""
    from fcnnzoo.training import resume as resume_files

    real_write_state = resume_files.write_state

    def write_then_interrupt(directory, state, options):
        real_write_state(directory, state, options)
        monkeypatch.setattr(resume_files, "write_state", real_write_state)
        raise KeyboardInterrupt

    monkeypatch.setattr(resume_files, "write_state", write_then_interrupt)


def test_train_help_lists_training_options(capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["train", "--help"])
    text = capsys.readouterr().out
    for option in ("--optimizer", "--momentum", "--weight-decay", "--schedule", "--step-size", "--gamma", "--early-stopping", "--resume"):
        assert option in text, option
