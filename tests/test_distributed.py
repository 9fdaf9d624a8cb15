"""Distributed training: two local processes under torchrun against one, and the errors around it.

Every process group here lives on 127.0.0.1 with a port picked free on this machine.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fcnnzoo
from fcnnzoo.training import distributed
from cli_runs import assert_usage_error
from cli_runs import run

# allconv has no dropout and no batch norm, so two processes that split each global batch compute the
# same gradient as one process up to float rounding. Its stages run the fused conv-ReLU-pool op.
ARGUMENTS = ("train", "allconv", "--epochs", "2", "--batch-size", "32", "--seed", "0", "--json")
CHECKPOINT_FILES = {
    "config.json",
    "history.csv",
    "history.json",
    "metrics.json",
    "model.safetensors",
    "resume.json",
    "resume.safetensors",
    "training-curve.png",
}

# Runs the command line under torchrun and fails a process other than rank 0 that writes, creates,
# renames or removes anything inside the folder given as the first argument. It can also make one
# rank fail on a misspelled model name, or interrupt rank 0 once an epoch's resume state is written.
DRIVER = """
import os
import sys

watched = os.path.realpath(sys.argv[1])
changes = []

def inside(path):
    try:
        return os.path.realpath(os.fsdecode(path)).startswith(watched)
    except (TypeError, ValueError):
        return False

def audit(event, args):
    if event == "open" and inside(args[0]):
        mode, flags = args[1], args[2]
        if (mode is not None and any(c in mode for c in "wax+")) or (mode is None and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)):
            changes.append((event, args[0]))
    elif event in ("os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree", "os.rename", "os.replace") and inside(args[0]):
        changes.append((event, args[0]))

if os.environ["RANK"] != "0":
    sys.addaudithook(audit)
arguments = sys.argv[2:]
if os.environ["RANK"] == os.environ.get("FCNNZOO_TEST_FAILING_RANK"):
    arguments[1] = "allconvv"
interrupt_after = os.environ.get("FCNNZOO_TEST_INTERRUPT_AFTER_EPOCH")
if interrupt_after and os.environ["RANK"] == "0":
    from fcnnzoo.training import resume

    write_state = resume.write_state

    def write_state_then_interrupt(folder, state, options):
        write_state(folder, state, options)
        if state.epoch == int(interrupt_after):
            raise KeyboardInterrupt

    resume.write_state = write_state_then_interrupt
from fcnnzoo import cli
code = cli.main(arguments)
if changes:
    print(f"rank {os.environ['RANK']} changed {changes}", file=sys.stderr)
    code = 3
sys.exit(code)
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(tmp_path: Path, processes: int, *arguments: str, environment: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    command = [
        sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={processes}",
        "--master-addr=127.0.0.1", f"--master-port={_free_port()}", str(driver), str(tmp_path / "runs"), *arguments,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd(), **(environment or {})}
    for name in distributed.ENVIRONMENT_VARIABLES:
        env.pop(name, None)
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return fcnnzoo.load(folder).state_dict()


def test_ddp_two_processes_match_one(tmp_path, monkeypatch, capsys):
    two = tmp_path / "runs" / "two"
    finished = _torchrun(tmp_path, 2, *ARGUMENTS, "--out", str(two))
    assert finished.returncode == 0, finished.stderr
    # Rank 1 prints nothing, so stdout contains exactly rank 0's report.
    metrics = json.loads(finished.stdout)
    assert metrics["world_size"] == 2
    assert {path.name for path in two.iterdir()} == CHECKPOINT_FILES
    assert [path.name for path in (tmp_path / "runs").iterdir()] == ["two"]

    # The reference: the same command in one process of a group of one, so that it draws the same
    # global batches from the DistributedSampler as the two processes together.
    for name, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    one = tmp_path / "one"
    code, out, err = run(capsys, *ARGUMENTS, "--out", one)
    assert code == 0, err
    reference = json.loads(out)

    # The two processes see 1438 examples per epoch (1437 plus one repeated to split evenly) and add
    # the gradients in another order. Adam turns these float-sized differences into weight changes of
    # at most 0.005 on weights up to 0.84 (measured with these arguments), and the test predictions did not change.
    assert metrics["test_examples"] == reference["test_examples"] == 360
    assert metrics["test_accuracy"] == pytest.approx(reference["test_accuracy"], abs=0.01)
    assert metrics["train_loss"] == pytest.approx(reference["train_loss"], abs=0.01)
    two_weights = _weights(two)
    one_weights = _weights(one)
    assert two_weights.keys() == one_weights.keys()
    for name, tensor in one_weights.items():
        torch.testing.assert_close(two_weights[name], tensor, atol=0.02, rtol=0.0, msg=name)
    # An untrained network scores about 0.1, so the comparison above covers trained weights.
    assert metrics["test_accuracy"] > 0.5

    # Each epoch reseeds the sampler and every process's generators, so a resumed two-process run
    # repeats the uninterrupted one exactly.
    resumed = tmp_path / "runs" / "resumed"
    interrupted = _torchrun(tmp_path, 2, *ARGUMENTS, "--out", str(resumed), environment={"FCNNZOO_TEST_INTERRUPT_AFTER_EPOCH": "1"})
    assert interrupted.returncode != 0
    assert "fcnnzoo: error: interrupted" in interrupted.stderr
    assert [record["epoch"] for record in json.loads((resumed / "history.json").read_text())] == [1]
    finished = _torchrun(tmp_path, 2, *ARGUMENTS, "--resume", str(resumed))
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout)["test_accuracy"] == metrics["test_accuracy"]
    resumed_weights = _weights(resumed)
    for name, tensor in two_weights.items():
        assert torch.equal(resumed_weights[name], tensor), name


def test_ddp_failing_rank_ends_job(tmp_path):
    finished = _torchrun(
        tmp_path, 2, *ARGUMENTS, "--out", str(tmp_path / "runs" / "failed"), environment={"FCNNZOO_TEST_FAILING_RANK": "1"}
    )
    assert finished.returncode != 0
    assert "fcnnzoo: error: " in finished.stderr
    assert "allconvv" in finished.stderr
    assert "exitcode: 2" in finished.stderr
    assert not (tmp_path / "runs" / "failed" / "model.safetensors").exists()


def test_train_partial_torchrun_environment(monkeypatch, capsys, tmp_path):
    for name in distributed.ENVIRONMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", "0")
    code, out, err = run(capsys, *ARGUMENTS, "--out", tmp_path / "out")
    assert_usage_error(code, out, err, "WORLD_SIZE", "torchrun")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("environment", "fragment"),
    [
        ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK must be below WORLD_SIZE=2, got RANK=2"),
        ({"RANK": "zero", "WORLD_SIZE": "2"}, "RANK must be an int, got 'zero'"),
        ({"RANK": "0", "WORLD_SIZE": "0"}, "WORLD_SIZE must be at least 1, got 0"),
    ],
)
def test_context_invalid_variables(environment, fragment):
    base = {"LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    with pytest.raises(ValueError, match=fragment):
        distributed.context_from_environment({**base, **environment})


def test_context_without_variables():
    assert distributed.context_from_environment({"PATH": "/usr/bin"}) is None
    assert distributed.current_group() is None
    assert distributed.is_main_process()


def test_world_size_above_train_examples():
    with pytest.raises(ValueError, match="The train split has 3 examples, fewer than the 4 processes"):
        distributed.check_world_size(4, batch_size=32, train_examples=3)


def test_world_size_uneven_global_batch():
    with pytest.raises(ValueError, match="--batch-size 32 is the global batch .* 3 processes. Use 30 or 33"):
        distributed.check_world_size(3, batch_size=32, train_examples=100)
    distributed.check_world_size(2, batch_size=32, train_examples=2)
