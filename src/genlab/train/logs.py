"""The training log: running means of every step output between two log lines,
written to ``metrics.jsonl`` (one JSON object per line) and, when installed, to
TensorBoard (``tensorboard/`` in the run directory)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..io import atomic_write_bytes, write_error


class MetricLog:
    """Accumulates ``{"<step>/<key>": value}`` over iterations and writes their means.

    Values stay tensors (no device sync) until a line is written. ``images_per_s``
    counts iterations since the previous line times the global batch size.
    """

    def __init__(self, run_dir: Path, batch_size: int):
        self.run_dir = Path(run_dir)
        self.batch_size = batch_size
        self._sums: dict[str, torch.Tensor | float] = {}
        self._counts: dict[str, int] = {}
        self.count = 0
        self._t0 = time.perf_counter()
        self._step0 = 0
        self._tb = None
        self._tb_tried = False

    def start(self, step: int) -> None:
        """Forget everything accumulated; the throughput clock starts now at ``step``."""
        self._t0, self._step0 = time.perf_counter(), step
        self.clear()

    def clear(self) -> None:
        self._sums, self._counts, self.count = {}, {}, 0

    def add(self, step_name: str, out: dict) -> None:
        """Add one step's outputs (the dict its loss returned) under ``step_name/key``."""
        for k, v in out.items():
            key = f"{step_name}/{k}"
            v = v.detach().float() if isinstance(v, torch.Tensor) else float(v)
            prev = self._sums.get(key)
            self._sums[key] = v if prev is None else prev + v
            self._counts[key] = self._counts.get(key, 0) + 1

    def write(self, step: int, lrs: dict[str, float], elapsed: float, bar=None) -> None:
        """Append the means since the last line (plus learning rates, images/s and the
        training time ``elapsed`` in seconds) as the record of ``step``."""
        now = time.perf_counter()
        iters = step - self._step0
        record = {"step": step}
        for k, v in self._sums.items():
            record[k] = float(v) / self._counts[k]
        record["lr"] = next(iter(lrs.values()))
        if len(lrs) > 1:
            for name, lr in lrs.items():
                record[f"{name}/lr"] = lr
        record["images_per_s"] = iters * self.batch_size / max(now - self._t0, 1e-9)
        record["time"] = elapsed
        self.clear()
        self._t0, self._step0 = now, step
        path = self.run_dir / "metrics.jsonl"
        try:
            with open(path, "a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:
            raise write_error(path, e, "append to") from None
        tb = self._tensorboard()
        if tb is not None:
            for k, v in record.items():
                if k != "step":
                    tb.add_scalar(k, v, step)
        if bar is not None:
            bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k.endswith("/loss")}, refresh=False)

    def _tensorboard(self):
        if not self._tb_tried:
            self._tb_tried = True
            try:
                from torch.utils.tensorboard import SummaryWriter
            except Exception:  # tensorboard not installed: skip silently
                return None
            self._tb = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))
        return self._tb

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()


def trim_metrics(path: Path, step: int) -> None:
    """Drop the metric lines written after ``step`` (by a run that died before its
    next checkpoint), so the resumed run does not log those steps twice."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash
    atomic_write_bytes(path, ("\n".join(keep) + "\n").encode() if keep else b"")
