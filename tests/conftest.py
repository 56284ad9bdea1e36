import dataclasses
import json
import os
import signal
import subprocess
import sys

import pytest
import torch

import dslib.train
from dslib import ablation


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest, and steadiest on a shared machine, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def resume_check(monkeypatch):
    """The resume check every ablation shares: ``run(directory)`` runs the grid of one ``setting`` and returns its
    results; killed after step 3 (its last checkpoint and evaluation at step 2) the run resumes from step 2 and
    reaches ``results``' numbers on ``metrics``."""

    def check(run, setting: str, directory, results: dict, metrics) -> None:
        train = dslib.train.train

        def killed_at_step_3(r):
            if r.stop_after == 4:
                train(dataclasses.replace(r, stop_after=3))  # step 3 ran; no checkpoint is written there
                raise KeyboardInterrupt
            return train(r)

        monkeypatch.setattr(dslib.train, "train", killed_at_step_3)
        with pytest.raises(KeyboardInterrupt):
            run(directory)
        record = json.loads((directory / setting / ablation.RUN_FILE).read_text())
        assert [e["step"] for e in record["evals"]] == [2]
        resumed = []

        def spy(r):
            result = train(r)
            resumed.append(result.resumed_from)
            return result

        monkeypatch.setattr(dslib.train, "train", spy)
        again = run(directory)
        assert resumed == [2]
        for a, b in zip(again["settings"][setting]["evals"], results["settings"][setting]["evals"], strict=True):
            assert {m: a[m] for m in metrics} == pytest.approx({m: b[m] for m in metrics}, rel=1e-5)
        monkeypatch.undo()

    return check


@pytest.fixture
def torchrun_two():
    """Run ``worker`` (a script) under ``torchrun --standalone`` with two processes on CPU; fail with its output.

    ``--standalone`` picks a free rendezvous port, so concurrent test runs do not collide on 29500.
    """

    def run(worker, *args: str, timeout: float = 600) -> None:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker)]
        proc = subprocess.Popen(
            [*cmd, *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers: nothing outlives the test
            stdout, stderr = proc.communicate()
        assert proc.returncode == 0, stdout[-3000:] + stderr[-5000:]

    return run
