"""Tests of the fcnnzoo command line, in process and as real subprocesses."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import fcnnzoo
from fcnnzoo import cli
from cli_runs import assert_usage_error
from cli_runs import run


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def tiny_run(test_components, tmp_path, capsys) -> tuple[Path, dict]:
    """A tiny_cnn trained for one epoch on the synthetic dataset through the command line."""
    out = tmp_path / "tiny"
    code, stdout, err = run(capsys, "train", "tiny_cnn", "--dataset", "synthetic", "--epochs", "1", "--batch-size", "16", "--out", out, "--json")
    assert code == 0, err
    return out, json.loads(stdout)


@pytest.fixture
def fcnn_copy(fcnn_run, tmp_path) -> Path:
    """A private copy of the shared fcnn checkpoint that a test may modify."""
    return Path(shutil.copytree(fcnn_run["path"], tmp_path / "fcnn"))


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("FCNNZOO_STRICT_PLUGINS", None)
    return env


# -- list and info ---------------------------------------------------------------


def test_list_models_json(capsys):
    code, out, err = run(capsys, "list", "models", "--json")
    assert code == 0, err
    rows = json.loads(out)
    by_name = {row["name"]: row for row in rows}
    for name in ("fcnn", "lenet5", "allconv"):
        assert by_name[name]["plugin"] == "fcnnzoo.builtin.architectures"
        assert by_name[name]["description"]
    assert [row["name"] for row in rows] == fcnnzoo.list_models()


def test_list_models_pattern(capsys):
    code, out, _ = run(capsys, "list", "models", "fcnn*", "--json")
    assert code == 0
    assert [row["name"] for row in json.loads(out)] == ["fcnn"]


def test_list_models_human(capsys):
    code, out, _ = run(capsys, "list", "models")
    assert code == 0
    assert out.splitlines()[0].split() == ["name", "plugin", "description"]
    assert any(line.startswith("fcnn ") for line in out.splitlines())


@pytest.mark.parametrize(("kind", "expected"), [("datasets", "digits"), ("augmenters", None), ("quantizers", None)])
def test_list_components_json(capsys, kind, expected):
    code, out, _ = run(capsys, "list", kind, "--json")
    assert code == 0
    rows = json.loads(out)
    assert all(set(row) == {"name", "qualified_name", "plugin", "distribution", "version", "description"} for row in rows)
    assert all(row["qualified_name"] == f"{row['plugin']}:{row['name']}" for row in rows)
    if expected is not None:
        assert expected in [row["name"] for row in rows]


def test_list_plugins_json(capsys):
    code, out, _ = run(capsys, "list", "plugins", "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["fcnnzoo.builtin.datasets"]["status"] == "ok"
    assert "dataset:digits" in rows["fcnnzoo.builtin.datasets"]["components"]


def test_list_empty_pattern_human(capsys):
    code, out, _ = run(capsys, "list", "models", "zzz*")
    assert code == 0
    assert out.strip() == "No models found."


def test_info_json_matches_model(capsys):
    code, out, _ = run(capsys, "info", "fcnn", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["name"] == "fcnn"
    assert info["params"] == sum(p.numel() for p in fcnnzoo.create_model("fcnn").parameters())


def test_info_human(capsys):
    code, out, _ = run(capsys, "info", "fcnn")
    assert code == 0
    assert "name: fcnn" in out.splitlines()


def test_help_exits_zero(capsys):
    code, out, _ = run(capsys, "train", "--help")
    assert code == 0
    assert "--augment" in out


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.strip() == f"fcnnzoo {fcnnzoo.__version__}"


# -- train and eval ----------------------------------------------------------------


def test_train_json_is_one_document(tiny_run):
    out, report = tiny_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert report == {**metrics, "checkpoint": str(out.absolute())}
    for key in ("model", "dataset", "epochs", "test_accuracy", "test_loss", "train_seconds", "params"):
        assert key in metrics, key
    assert (out / "config.json").is_file()
    assert (out / "model.safetensors").is_file()


def test_train_human_summary(test_components, tmp_path, capsys):
    code, out, err = run(capsys, "train", "tiny_cnn", "--dataset", "synthetic", "--epochs", "1", "--out", tmp_path / "t")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Trained tiny_cnn (")
    assert "on synthetic for 1 epoch in " in lines[0]
    assert lines[1].startswith("Test accuracy ")
    assert lines[2] == f"Checkpoint: {(tmp_path / 't').absolute()}"
    assert err == ""


def test_train_verbose_logs_epochs(test_components, tmp_path, capsys):
    code, _, err = run(capsys, "train", "tiny_cnn", "--dataset", "synthetic", "--epochs", "2", "--out", tmp_path / "t", "-v")
    assert code == 0
    assert "INFO fcnnzoo.training.engine: Epoch 1/2: train loss" in err
    assert "INFO fcnnzoo.training.engine: Epoch 2/2: train loss" in err


def test_cli_restores_logging(test_components, tmp_path, capsys):
    package_logger = logging.getLogger("fcnnzoo")
    handlers = list(package_logger.handlers)
    level = package_logger.level
    run(capsys, "train", "tiny_cnn", "--dataset", "synthetic", "--epochs", "1", "--out", tmp_path / "t", "-vv")
    assert package_logger.handlers == handlers
    assert package_logger.level == level


def test_eval_agrees_with_train(tiny_run, capsys):
    out, report = tiny_run
    code, stdout, err = run(capsys, "eval", out, "--json")
    assert code == 0, err
    evaluation = json.loads(stdout)
    assert evaluation["test_accuracy"] == report["test_accuracy"]
    assert evaluation["test_loss"] == report["test_loss"]
    assert evaluation["test_examples"] == report["test_examples"]
    assert evaluation["model"] == "tiny_cnn"
    assert evaluation["dataset"] == "synthetic"


def test_eval_human_summary(tiny_run, capsys):
    out, report = tiny_run
    code, stdout, _ = run(capsys, "eval", out)
    assert code == 0
    assert f"Test accuracy {report['test_accuracy']:.4f}" in stdout


def test_train_augment_option_reaches_augmenter(test_components, tmp_path, capsys):
    seen = []

    class Shift:
        @fcnnzoo.hookimpl
        def fcnnzoo_register_augmenters(self):
            def factory(amount=0.0, flag=False, label="x"):
                seen.append((amount, flag, label))
                return lambda images, generator=None: images + amount

            return [fcnnzoo.AugmenterSpec(name="test_shift", factory=factory, description="adds a constant")]

    fcnnzoo.register_plugin(Shift(), name="test-shift")
    try:
        code, out, err = run(
            capsys, "train", "tiny_cnn", "--dataset", "synthetic", "--epochs", "1", "--out", tmp_path / "t",
            "--augment", "test_shift:amount=0.5,flag=true,label=abc", "--augment", "test_shift:amount=2", "--json",
        )
    finally:
        fcnnzoo.unregister_plugin("test-shift")
    assert code == 0, err
    assert seen == [(0.5, True, "abc"), (2, False, "x")]
    assert json.loads(out)["augment"] == [
        {"name": "test_shift", "arguments": {"amount": 0.5, "flag": True, "label": "abc"}},
        {"name": "test_shift", "arguments": {"amount": 2}},
    ]


@pytest.mark.slow
def test_fcnn_eval_agrees_with_train(fcnn_run, capsys):
    code, out, err = run(capsys, "eval", fcnn_run["path"], "--json")
    assert code == 0, err
    evaluation = json.loads(out)
    assert evaluation["test_accuracy"] == fcnn_run["test_accuracy"]
    assert evaluation["test_loss"] == fcnn_run["test_loss"]


@pytest.mark.slow
def test_fcnn_tampered_weights_exit_2(fcnn_copy, capsys):
    flip_last_byte(fcnn_copy / "model.safetensors")
    code, out, err = run(capsys, "eval", fcnn_copy)
    assert_usage_error(code, out, err, "sha256", "model.safetensors", "modified or corrupted")


def test_tampered_weights_exit_2(tiny_run, capsys):
    out, _ = tiny_run
    flip_last_byte(out / "model.safetensors")
    code, stdout, err = run(capsys, "eval", out, "--json")
    assert_usage_error(code, stdout, err, "sha256", str(out / "model.safetensors"))


# -- quantize --------------------------------------------------------------------------


def test_quantize_writes_report_and_checkpoint(tiny_run, tmp_path, capsys):
    source, report = tiny_run
    target = tmp_path / "half"
    code, out, err = run(capsys, "quantize", source, "--method", "test_half:scale=1.0", "--out", target, "--json")
    assert code == 0, err
    quantization = json.loads(out)
    assert quantization == json.loads((target / "quantization.json").read_text())
    assert quantization["method"] == "test_half"
    assert quantization["arguments"] == {"scale": 1.0}
    assert quantization["size_bytes_before"] == (source / "model.safetensors").stat().st_size
    assert quantization["size_bytes_after"] == (target / "model.safetensors").stat().st_size
    assert quantization["size_bytes_after"] < quantization["size_bytes_before"]
    assert quantization["accuracy_before"] == report["test_accuracy"]

    code, out, _ = run(capsys, "eval", target, "--json")
    assert code == 0
    evaluation = json.loads(out)
    assert evaluation["test_accuracy"] == quantization["accuracy_after"]
    assert evaluation["quantization"] == {"method": "test_half", "arguments": {"scale": 1.0}}


def test_quantize_human_summary(tiny_run, tmp_path, capsys):
    source, _ = tiny_run
    code, out, _ = run(capsys, "quantize", source, "--method", "test_half", "--out", tmp_path / "half")
    assert code == 0
    assert "Weights: " in out
    assert "Test accuracy: " in out


@pytest.mark.slow
def test_fcnn_quantize_int8_weight_only(fcnn_run, tmp_path, capsys):
    target = tmp_path / "int8"
    code, out, err = run(capsys, "quantize", fcnn_run["path"], "--method", "int8_weight_only", "--out", target, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["accuracy_before"] == fcnn_run["test_accuracy"]
    assert report["size_bytes_after"] < 0.5 * report["size_bytes_before"]
    assert report["accuracy_after"] >= report["accuracy_before"] - 0.01
    code, out, _ = run(capsys, "eval", target, "--json")
    assert code == 0
    assert json.loads(out)["test_accuracy"] == report["accuracy_after"]


# -- bad usage and invalid input: exit code 2, one line naming the value -------------------


@pytest.mark.parametrize(
    ("arguments", "fragments"),
    [
        (["train", "no_such_model", "--epochs", "1"], ["'no_such_model'"]),
        (["train", "tiny_cnn", "--epochs", "1", "--dataset", "no_such_data"], ["'no_such_data'"]),
        (["train", "tiny_cnn", "--epochs", "1", "--augment", "no_such_aug"], ["'no_such_aug'"]),
        (["train", "tiny_cnn", "--epochs", "1", "--augment", "hflip:p"], ["'hflip:p'", "'p'"]),
        (["train", "tiny_cnn", "--epochs", "1", "--augment", "hflip:"], ["'hflip:'"]),
        (["train", "tiny_cnn", "--epochs", "1", "--augment", ":p=1"], ["':p=1'"]),
        (["train", "tiny_cnn", "--epochs", "1", "--augment", "hflip:p=1,p=2"], ["'p'", "twice"]),
        (["train", "tiny_cnn", "--epochs", "1", "--augment", "hflip:1x=2"], ["'1x'"]),
        (["train", "tiny_cnn", "--epochs", "0"], ["--epochs", "'0'"]),
        (["train", "tiny_cnn", "--epochs", "-3"], ["--epochs", "'-3'"]),
        (["train", "tiny_cnn", "--epochs", "ten"], ["--epochs", "'ten'"]),
        (["train", "tiny_cnn", "--epochs", "1", "--batch-size", "0"], ["--batch-size", "'0'"]),
        (["train", "tiny_cnn", "--epochs", "1", "--lr", "0"], ["--lr", "'0'"]),
        (["train", "tiny_cnn", "--epochs", "1", "--lr", "-0.1"], ["--lr", "'-0.1'"]),
        (["train", "tiny_cnn", "--epochs", "1", "--lr", "nan"], ["--lr", "'nan'"]),
        (["train", "tiny_cnn", "--epochs", "1", "--lr", "inf"], ["--lr", "'inf'"]),
        (["train", "tiny_cnn", "--epochs", "1", "--lr", "fast"], ["--lr", "'fast'"]),
        (["train", "tiny_cnn", "--epochs", "1", "--seed", "-1"], ["--seed", "'-1'"]),
        (["train", "tiny_cnn", "--epochs", "1", "--schedule", "bogus"], ["--schedule", "'bogus'"]),
        (["train", "tiny_cnn", "--epochs", "1", "--label-smoothing", "1"], ["--label-smoothing", "'1'"]),
        (["train", "tiny_cnn", "--epochs", "1", "--label-smoothing", "x"], ["--label-smoothing", "'x'"]),
        (["train", "tiny_cnn"], ["--epochs"]),
        (["list", "widgets"], ["'widgets'"]),
        (["frobnicate"], ["'frobnicate'"]),
        ([], ["COMMAND"]),
        (["info", "no_such_model"], ["'no_such_model'"]),
        (["quantize", "x", "--out", "y"], ["--method"]),
    ],
)
def test_bad_usage_exits_2(test_components, tmp_path, capsys, arguments, fragments):
    if arguments[:1] == ["train"] and "--out" not in fragments:
        arguments = [*arguments, "--out", str(tmp_path / "never")]
    code, out, err = run(capsys, *arguments)
    assert_usage_error(code, out, err, *fragments)
    assert not (tmp_path / "never").exists()


def test_augmenter_rejecting_value_exits_2(tmp_path, capsys):
    code, out, err = run(capsys, "train", "fcnn", "--epochs", "1", "--augment", "hflip:p=abc", "--out", tmp_path / "x")
    assert_usage_error(code, out, err, "abc")


def test_augmenter_unknown_argument_exits_2(tmp_path, capsys):
    code, out, err = run(capsys, "train", "fcnn", "--epochs", "1", "--augment", "hflip:bogus=1", "--out", tmp_path / "x")
    assert_usage_error(code, out, err, "Invalid arguments {'bogus': 1} for augmenter 'hflip'", "bogus")


def test_quantizer_unknown_argument_exits_2(tiny_run, tmp_path, capsys):
    source, _ = tiny_run
    code, out, err = run(capsys, "quantize", source, "--method", "test_half:bits=4", "--out", tmp_path / "q")
    assert_usage_error(code, out, err, "Invalid arguments {'bits': 4} for quantizer 'test_half'")


def test_interrupt_exits_130(test_components, tmp_path, capsys, monkeypatch):
    import fcnnzoo.workflows

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fcnnzoo.workflows, "train_to_checkpoint", interrupted)
    code, out, err = run(capsys, "train", "tiny_cnn", "--dataset", "synthetic", "--epochs", "1", "--out", tmp_path / "x")
    assert code == 130
    assert out == ""
    assert err == "fcnnzoo: error: interrupted\n"


def test_system_error_exits_1(test_components, tmp_path, capsys, monkeypatch):
    import fcnnzoo.workflows

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fcnnzoo.workflows, "train_to_checkpoint", disk_full)
    code, out, err = run(capsys, "train", "tiny_cnn", "--dataset", "synthetic", "--epochs", "1", "--out", tmp_path / "x")
    assert code == 1
    assert out == ""
    assert err == "fcnnzoo: error: [Errno 28] No space left on device\n"


def test_debug_verbosity_logs_traceback(tmp_path, capsys):
    code, _, err = run(capsys, "eval", tmp_path / "missing", "-vv")
    assert code == 2
    assert "Traceback" in err
    assert err.splitlines()[-1].startswith("fcnnzoo: error: Checkpoint folder ")


def test_train_out_is_file_exits_2(test_components, tmp_path, capsys):
    target = tmp_path / "taken.txt"
    target.write_text("keep")
    code, out, err = run(capsys, "train", "tiny_cnn", "--dataset", "synthetic", "--epochs", "1", "--out", target)
    assert_usage_error(code, out, err, str(target))
    assert target.read_text() == "keep"


def test_train_out_is_foreign_folder_exits_2(test_components, tmp_path, capsys):
    target = tmp_path / "documents"
    target.mkdir()
    (target / "letter.txt").write_text("keep")
    code, out, err = run(capsys, "train", "tiny_cnn", "--dataset", "synthetic", "--epochs", "1", "--out", target)
    assert_usage_error(code, out, err, str(target), "not an fcnnzoo checkpoint")
    assert (target / "letter.txt").read_text() == "keep"


def test_eval_missing_folder_exits_2(tmp_path, capsys):
    code, out, err = run(capsys, "eval", tmp_path / "nothing-here", "--json")
    assert_usage_error(code, out, err, str(tmp_path / "nothing-here"))


def test_eval_file_exits_2(tmp_path, capsys):
    path = tmp_path / "model.pt"
    path.write_bytes(b"\x80\x04")
    code, out, err = run(capsys, "eval", path)
    assert_usage_error(code, out, err, str(path))


def test_eval_folder_without_config_exits_2(tmp_path, capsys):
    code, out, err = run(capsys, "eval", tmp_path)
    assert_usage_error(code, out, err, str(tmp_path / "config.json"))


def test_eval_invalid_config_exits_2(tiny_run, capsys):
    out, _ = tiny_run
    (out / "config.json").write_text("{broken")
    code, stdout, err = run(capsys, "eval", out)
    assert_usage_error(code, stdout, err, "not valid JSON")


def test_quantize_unknown_method_exits_2(tiny_run, tmp_path, capsys):
    source, _ = tiny_run
    code, out, err = run(capsys, "quantize", source, "--method", "int3_magic", "--out", tmp_path / "q")
    assert_usage_error(code, out, err, "'int3_magic'")
    assert not (tmp_path / "q").exists()


def test_quantize_into_source_exits_2(tiny_run, capsys):
    source, _ = tiny_run
    code, out, err = run(capsys, "quantize", source, "--method", "test_half", "--out", source)
    assert_usage_error(code, out, err, str(source))


def test_quantize_twice_exits_2(tiny_run, tmp_path, capsys):
    source, _ = tiny_run
    code, _, _ = run(capsys, "quantize", source, "--method", "test_half", "--out", tmp_path / "q1")
    assert code == 0
    code, out, err = run(capsys, "quantize", tmp_path / "q1", "--method", "test_half", "--out", tmp_path / "q2")
    assert_usage_error(code, out, err, "already quantized", "'test_half'")


def test_quantize_missing_checkpoint_exits_2(test_components, tmp_path, capsys):
    code, out, err = run(capsys, "quantize", tmp_path / "none", "--method", "test_half", "--out", tmp_path / "q")
    assert_usage_error(code, out, err, str(tmp_path / "none"))


def test_quantize_bad_method_syntax_exits_2(tiny_run, tmp_path, capsys):
    source, _ = tiny_run
    code, out, err = run(capsys, "quantize", source, "--method", "test_half:scale", "--out", tmp_path / "q")
    assert_usage_error(code, out, err, "'test_half:scale'", "test_half:scale=VALUE")


# -- option parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hflip", ("hflip", {})),
        ("hflip:p=0.5", ("hflip", {"p": 0.5})),
        ("random_crop:padding=2,p=1", ("random_crop", {"padding": 2, "p": 1})),
        ("gaussian_noise:std=1e-2,seed=-3", ("gaussian_noise", {"std": 0.01, "seed": -3})),
        ("x:flag=True,other=false", ("x", {"flag": True, "other": False})),
        ("x:mode=reflect", ("x", {"mode": "reflect"})),
        ("x:value=nan", ("x", {"value": "nan"})),
        (" x : a = 1 ", ("x", {"a": 1})),
    ],
)
def test_parse_component_spec(text, expected):
    assert cli.parse_component_spec(text) == expected


# -- real processes ----------------------------------------------------------------------------


def test_python_dash_m_train_then_eval(tmp_path):
    out = tmp_path / "run"
    train = subprocess.run(
        [sys.executable, "-m", "fcnnzoo", "train", "fcnn", "--dataset", "digits", "--epochs", "1", "--out", str(out), "--json"],
        capture_output=True, text=True, env=_subprocess_env(), timeout=600,
    )
    assert train.returncode == 0, train.stderr
    report = json.loads(train.stdout)
    assert train.stderr == ""

    evaluation = subprocess.run(
        [sys.executable, "-m", "fcnnzoo", "eval", str(out), "--json"],
        capture_output=True, text=True, env=_subprocess_env(), timeout=600,
    )
    assert evaluation.returncode == 0, evaluation.stderr
    result = json.loads(evaluation.stdout)
    assert result["test_accuracy"] == report["test_accuracy"]
    assert result["test_loss"] == report["test_loss"]

    flip_last_byte(out / "model.safetensors")
    tampered = subprocess.run(
        [sys.executable, "-m", "fcnnzoo", "eval", str(out)], capture_output=True, text=True, env=_subprocess_env(), timeout=600
    )
    assert tampered.returncode == 2
    assert tampered.stdout == ""
    assert len(tampered.stderr.splitlines()) == 1
    assert "sha256" in tampered.stderr


def test_closed_stdout_pipe_is_quiet():
    process = subprocess.Popen(
        [sys.executable, "-m", "fcnnzoo", "list", "plugins", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_subprocess_env(),
    )
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=600) == 1
    assert "Traceback" not in stderr
    assert "BrokenPipeError" not in stderr


def test_console_script(tmp_path):
    script = Path(sys.executable).with_name("fcnnzoo")
    if not script.exists():
        found = shutil.which("fcnnzoo")
        assert found is not None, "the fcnnzoo console script is not installed"
        script = Path(found)
    listing = subprocess.run([str(script), "list", "models", "--json"], capture_output=True, text=True, env=_subprocess_env(), timeout=600)
    assert listing.returncode == 0, listing.stderr
    assert "fcnn" in [row["name"] for row in json.loads(listing.stdout)]

    bad = subprocess.run([str(script), "train", "fcnn", "--epochs", "0", "--out", str(tmp_path / "x")], capture_output=True, text=True, env=_subprocess_env(), timeout=600)
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == ["fcnnzoo: error: argument --epochs: expected a positive integer, got '0' (run 'fcnnzoo train --help' for usage)"]
