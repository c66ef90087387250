"""Data-parallel training: 2 CPU processes under torchrun (gloo) give the same weights
as one process with the same global batch, and resume from the same checkpoint."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from toys import ToyData, run_cfg  # noqa: E402

pytestmark = pytest.mark.slow

SCRIPT = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {tests!r})
    import torch, torch.distributed as dist
    from toys import ToyData, register_toys, run_cfg
    from genlab.train import train, resume
    from genlab.io import save_tensors
    register_toys()
    dist.init_process_group("gloo")
    cfg = run_cfg(
        model="toy-linear", steps=4, batch_size=16, checkpoint_every=2, log_every=1, sample_every=2, ema_decay=0.5
    )
    data = ToyData(n=40)
    run = train(cfg, out_dir={out!r}, dataset=data)
    run = resume(run, steps=8, dataset=data)
    import genlab.train.runs as R
    import genlab.train.trainer as T
    model = R.build_model(R.load_run_config(run))
    # rank 1's final weights, to compare with rank 0's file
    t = T.Trainer(model, data, cfg.train, run)
    t.restore()
    save_tensors(t.model.state_dict(), os.path.join({out!r}, f"rank{{dist.get_rank()}}.safetensors"))
    dist.barrier()
    dist.destroy_process_group()
    """
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")
def test_two_processes_match_one(tmp_path, toys):
    import genlab
    from genlab.io import load_tensors
    from genlab.train import train
    from genlab.train.checkpoint import list_checkpoints

    out = tmp_path / "ddp"
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT.format(tests=str(Path(__file__).parent), out=str(out)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--nnodes=1",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        str(script),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    single = train(
        run_cfg(model="toy-linear", steps=8, batch_size=16, checkpoint_every=2, ema_decay=0.5),
        out_dir=str(tmp_path / "single"),
        dataset=ToyData(n=40),
    )
    a = load_tensors(out / "rank0.safetensors")
    b = load_tensors(out / "rank1.safetensors")
    ref = load_tensors(single / "checkpoints" / "step-0000008" / "model.safetensors")
    for k in ref:
        assert torch.equal(a[k], b[k]), f"ranks disagree on {k}"
        torch.testing.assert_close(a[k], ref[k], rtol=1e-5, atol=1e-5)
    # EMA model file and config written once, by rank 0; the resumed run continued to 8
    torch.testing.assert_close(genlab.load(out).state_dict(), genlab.load(single).state_dict(), rtol=1e-5, atol=1e-5)
    assert [s for s, _ in list_checkpoints(out / "checkpoints")] == [6, 8]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 8
