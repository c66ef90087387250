"""Training checkpoints: pickle-free layout, atomic writes, damage detection and
fallback, pruning, and surviving a SIGKILL at an arbitrary moment."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from genlab.errors import CheckpointError  # noqa: E402
from genlab.train.checkpoint import (  # noqa: E402
    decode_state,
    encode_state,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from toys import ToyData, assert_bit_identical, run_cfg  # noqa: E402


def test_state_round_trip_without_pickle(tmp_path):
    opt = torch.optim.Adam([torch.nn.Parameter(torch.randn(3, 2))], lr=1e-3)
    opt.param_groups[0]["params"][0].grad = torch.ones(3, 2)
    opt.step()
    state = {
        "opt": opt.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
        "nested": [1, 2.5, None, True, "s", (1, (2, 3)), {3: "int key"}],
        "inf": float("inf"),
    }
    path = save_checkpoint(tmp_path / "ck", 42, {"model": {"w": torch.arange(4.0)}}, state)
    assert path.name == "step-0000042"
    assert sorted(p.name for p in path.iterdir()) == ["model.safetensors", "state.json", "state.safetensors"]
    weights, back, step = load_checkpoint(path)
    assert step == 42 and torch.equal(weights["model"]["w"], torch.arange(4.0))
    assert back["nested"] == state["nested"] and back["inf"] == float("inf")
    assert back["rng"]["python"] == state["rng"]["python"]
    assert torch.equal(back["rng"]["torch"], state["rng"]["torch"])
    np.testing.assert_array_equal(back["rng"]["numpy"][1], state["rng"]["numpy"][1])
    np.random.set_state(back["rng"]["numpy"])
    random.setstate(back["rng"]["python"])
    opt2 = torch.optim.Adam([torch.nn.Parameter(torch.randn(3, 2))], lr=1e-3)
    opt2.load_state_dict(back["opt"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    # no pickle anywhere: the files are JSON and safetensors
    for f in path.iterdir():
        head = f.read_bytes()[:2]
        assert head != b"\x80\x02" and not head.startswith(b"PK")


def test_encode_rejects_unknown_objects():
    with pytest.raises(CheckpointError, match="cannot store"):
        encode_state({"f": object()}, {})
    assert decode_state(encode_state({"a": (1, 2)}, {}), {}) == {"a": (1, 2)}


@pytest.mark.parametrize("damage", ["truncate-weights", "truncate-state", "flip-byte", "missing-json"])
def test_damage_is_detected(tmp_path, damage):
    path = save_checkpoint(tmp_path, 1, {"model": {"w": torch.randn(64)}}, {"m": torch.randn(64)})
    if damage == "truncate-weights":
        f = path / "model.safetensors"
        f.write_bytes(f.read_bytes()[:-10])
    elif damage == "truncate-state":
        f = path / "state.safetensors"
        f.write_bytes(f.read_bytes()[:50])
    elif damage == "flip-byte":
        f = path / "model.safetensors"
        b = bytearray(f.read_bytes())
        b[-3] ^= 0xFF
        f.write_bytes(bytes(b))
    else:
        (path / "state.json").unlink()
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_prune_keeps_newest_and_removes_partial_writes(tmp_path):
    for s in (1, 2, 3, 4):
        save_checkpoint(tmp_path, s, {}, {"s": s})
    (tmp_path / ".tmp-step-0000005-abc").mkdir()
    prune_checkpoints(tmp_path, 2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [3, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-0000003", "step-0000004"]


def _straight(tmp_path, steps, data, **kw):
    import genlab
    from genlab.train import train

    d = train(run_cfg(steps=steps, **kw), out_dir=str(tmp_path / f"straight-{steps}"), dataset=data)
    return genlab.load(d).state_dict()


def test_corrupt_newest_checkpoint_falls_back_with_warning(tmp_path, toys):
    import genlab
    from genlab.train import resume, train

    data = ToyData(n=40)
    kw = dict(checkpoint_every=2, keep_checkpoints=3, ema_decay=0.8)
    run = train(run_cfg(steps=6, **kw), out_dir=str(tmp_path / "run"), dataset=data)
    assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [2, 4, 6]
    f = run / "checkpoints" / "step-0000006" / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.warns(UserWarning, match="step-0000006"):
        resume(run, steps=8, dataset=data)
    assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [4, 6, 8]
    assert_bit_identical(genlab.load(run).state_dict(), _straight(tmp_path, 8, data, **kw))
    # every checkpoint damaged: a clear error, not a silent restart
    for _, p in list_checkpoints(run / "checkpoints"):
        (p / "state.json").write_text("{")
    with pytest.raises(CheckpointError, match="no readable checkpoint"), pytest.warns(UserWarning):
        resume(run, steps=10, dataset=data)


KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from toys import ToyData, register_toys, run_cfg
    from genlab.train import train
    register_toys()
    train(run_cfg(steps=10**6, checkpoint_every=2, keep_checkpoints=2, ema_decay=0.8, log_every=3),
          out_dir={out!r}, dataset=ToyData(n=40))
    """
)


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path, toys):
    import genlab
    from genlab.train import resume

    run = tmp_path / "killed"
    script = KILL_SCRIPT.format(tests=str(Path(__file__).parent), out=str(run))
    proc = subprocess.Popen(
        [sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE
    )
    try:
        deadline = time.time() + 60
        while not list_checkpoints(run / "checkpoints"):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "no checkpoint appeared"
            time.sleep(0.02)
        time.sleep(random.uniform(0.05, 0.4))  # an arbitrary moment, often mid-write
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    data = ToyData(n=40)
    newest = list_checkpoints(run / "checkpoints")[-1][0]
    target = newest + 5
    resume(run, steps=target, dataset=data)
    kw = dict(checkpoint_every=2, keep_checkpoints=2, ema_decay=0.8, log_every=3)
    assert_bit_identical(genlab.load(run).state_dict(), _straight(tmp_path, target, data, **kw))
    # metrics never repeat a step after the crash
    import json

    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == target - target % 3
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
