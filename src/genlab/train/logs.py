"""The training log: running means of every step output between two log lines,
written to ``metrics.jsonl`` (one JSON object per line) and, when installed, to
TensorBoard (``tensorboard/`` in the run directory); and the progress display,
a tqdm bar on a terminal, plain lines in a log file (:func:`progress_bar`)."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Callable, TextIO

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


# --------------------------------------------------------------------------- progress


class PlainProgress:
    """The progress of ``fit`` for a stream that is not a terminal (``genlab train ... > log 2>&1``):
    tqdm's interface (``update``, ``set_postfix``, ``close``), but one plain line at every tenth
    of the steps this run takes or every ``seconds`` of wall-clock time, whichever comes first,
    and the last state once at ``close`` -- no redrawn bar, no carriage returns. A line reads::

        vae-mnist: step 500/1000 (50%), 120 s, 4.17 steps/s, ae/loss=0.0123

    (seconds and steps per second since this ``fit`` started; the losses of the latest log line).
    """

    def __init__(
        self,
        total: int,
        initial: int = 0,
        desc: str = "",
        *,
        stream: TextIO | None = None,
        seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total, self.n, self.desc = total, initial, desc
        self.stream = sys.stderr if stream is None else stream
        self.seconds, self.clock = seconds, clock
        self._initial = self._printed_step = initial
        self._every = max(1, math.ceil((total - initial) / 10))  # steps between two lines at most
        self._start = self._printed_time = clock()
        self._postfix: dict = {}

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        tenths = (self.n - self._initial) // self._every > (self._printed_step - self._initial) // self._every
        if tenths or now - self._printed_time >= self.seconds:
            self._print(now)

    def set_postfix(self, postfix: dict, refresh: bool = False) -> None:
        self._postfix = dict(postfix)

    def close(self) -> None:
        if self.n != self._printed_step:
            self._print(self.clock())

    def _print(self, now: float) -> None:
        elapsed = now - self._start
        rate = (self.n - self._initial) / elapsed if elapsed > 0 else 0.0
        line = (
            f"{self.desc}: step {self.n}/{self.total} "
            f"({self.n / max(self.total, 1):.0%}), {elapsed:.0f} s, {rate:.3g} steps/s"
        )
        line += "".join(f", {k}={v}" for k, v in self._postfix.items())
        print(line, file=self.stream, flush=True)
        self._printed_step, self._printed_time = self.n, now


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def _in_notebook() -> bool:
    """Whether this is a Jupyter kernel (whose stderr is no terminal, but draws tqdm's widget)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def progress_bar(total: int, initial: int, desc: str, stream: TextIO | None = None):
    """The progress display of a run from step ``initial`` to ``total`` on ``stream`` (default
    stderr): tqdm's bar on a terminal or in a notebook, else :class:`PlainProgress`."""
    stream = sys.stderr if stream is None else stream
    if _is_terminal(stream) or _in_notebook():
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, leave=True, file=stream)
    return PlainProgress(total, initial, desc, stream=stream)
