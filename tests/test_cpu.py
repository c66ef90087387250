"""genlab.train.cpu: glibc malloc tuning (applied, and switchable from the train config),
the thread count chosen from the cores and the load, the OpenMP environment of the
``genlab`` command, and a channels-last model's training that still resumes bit-identically."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from genlab.config import TrainConfig
from genlab.errors import ConfigError
from genlab.models.base import GenerativeModel, TrainStep
from genlab.train import cpu
from toys import ToyConfig, ToyData, assert_bit_identical, params_of, tcfg

SRC = Path(__file__).resolve().parents[1] / "src"
GLIBC = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")

# A fresh interpreter that reports whether glibc serves a 64 MiB block with mmap (mallinfo2's
# count of mmapped blocks goes up while it is held) before and after the code in SETUP.
MMAP_PROBE = textwrap.dedent("""
    import ctypes, json, sys
    libc = ctypes.CDLL("libc.so.6")
    class Info(ctypes.Structure):
        _fields_ = [
            (n, ctypes.c_size_t)
            for n in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
        ]
    libc.mallinfo2.restype = Info
    libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = (
        ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
    )
    def mmapped():
        before = libc.mallinfo2().hblks
        p = libc.malloc(64 << 20)
        used = libc.mallinfo2().hblks - before
        libc.free(p)
        return used
    first = mmapped()
    exec(sys.argv[1])
    print(json.dumps([first, mmapped(), RESULT]))
""")


def _mmap_probe(setup: str):
    env = dict(os.environ, PYTHONPATH=f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        env.pop(k, None)
    out = subprocess.run(
        [sys.executable, "-c", MMAP_PROBE, setup], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stderr
    import json

    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_tune_malloc_keeps_large_blocks_out_of_mmap():
    first, after, threshold = _mmap_probe(
        "from genlab.train import cpu\nRESULT = [cpu.tune_malloc(), cpu.tune_malloc(), cpu.malloc_tuned()]"
    )
    assert first == 1  # glibc's default: a 64 MiB block is mmapped, and unmapped again on free
    assert after == 0  # tuned: it comes from the heap and stays there for reuse
    assert threshold[0] == cpu.MALLOPT_MAX and threshold == [threshold[0]] * 3  # idempotent


TRAIN_SETUP = """
import tempfile, torch
from genlab.config import ModelConfig, TrainConfig
from genlab.models.base import GenerativeModel, TrainStep
from genlab.train import Trainer, cpu
class D:
    images, labels, num_classes, shape = torch.zeros(8, 1, 4, 4, dtype=torch.uint8), None, 0, (1, 4, 4)
class M(GenerativeModel):
    def __init__(self):
        super().__init__(ModelConfig(image_shape=(1, 4, 4)))
        self.w = torch.nn.Parameter(torch.zeros(1))
    def train_steps(self):
        return [TrainStep("s", [self], self.loss)]
    def loss(self, b):
        INSIDE.append((cpu.malloc_tuned(), mmapped()))
        return {"loss": (self.w - b["x"].mean()) ** 2}
INSIDE = []
cfg = TrainConfig(steps=2, batch_size=4, progress=False, sample_every=0, device="cpu", tune_malloc=%s)
trainer = Trainer(M(), D(), cfg, tempfile.mkdtemp())
before = cpu.malloc_tuned()
trainer.fit()
trainer.fit(3)
RESULT = [before, INSIDE, cpu.malloc_tuned()]
"""


@pytest.mark.slow
@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
@pytest.mark.parametrize("switch", [True, False])
def test_trainer_tunes_malloc_while_it_trains_unless_switched_off(switch):
    """Tuned in every step of every fit (64 MiB served from the heap), and glibc's defaults
    again before and after (64 MiB mmapped): outside a training loop the tuned heap can
    grow without bound."""
    first, after, (before, inside, left) = _mmap_probe(TRAIN_SETUP % switch)
    assert first == after == 1 and before is None and left is None
    assert inside == ([[cpu.MALLOPT_MAX, 0]] * 3 if switch else [[None, 1]] * 3)


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_restore_malloc_gives_the_defaults_back():
    first, after, result = _mmap_probe(
        "from genlab.train import cpu\n"
        "t = cpu.tune_malloc(); tuned = mmapped(); cpu.restore_malloc(); cpu.restore_malloc()\n"
        "RESULT = [t, tuned, cpu.malloc_tuned()]"
    )
    assert (first, after) == (1, 1) and result == [cpu.MALLOPT_MAX, 0, None]


def test_tune_malloc_is_a_no_op_without_glibc(monkeypatch):
    monkeypatch.setattr(cpu, "_malloc_tuned", None)
    monkeypatch.setattr(cpu, "_libc", lambda: None)
    assert cpu.tune_malloc() is None and cpu.malloc_tuned() is None


def test_tune_malloc_falls_back_to_the_documented_cap(monkeypatch):
    calls = []

    class OldGlibc:  # refuses an mmap threshold above the 32 MiB that mallopt(3) documents on 64-bit
        @staticmethod
        def mallopt(param, value):
            calls.append((param, value))
            return int(param != cpu.M_MMAP_THRESHOLD or value <= cpu.MMAP_THRESHOLD_CAP)

    monkeypatch.setattr(cpu, "_malloc_tuned", None)
    monkeypatch.setattr(cpu, "_libc", lambda: OldGlibc)
    assert cpu.tune_malloc() == cpu.MMAP_THRESHOLD_CAP
    assert calls == [
        (cpu.M_MMAP_THRESHOLD, cpu.MALLOPT_MAX),
        (cpu.M_MMAP_THRESHOLD, cpu.MMAP_THRESHOLD_CAP),
        (cpu.M_TRIM_THRESHOLD, cpu.MALLOPT_MAX),
    ]


# --------------------------------------------------------------------------- threads


@pytest.mark.parametrize(
    "cores,load,current,expected",
    [
        (2, 0.0, 2, 2),  # idle: every core
        (2, 0.3, 2, 2),  # a little background (a shell, an editor)
        (2, 0.5, 2, 2),  # half a core busy rounds up to free
        (2, 0.7, 2, 1),
        (2, 1.0, 2, 1),  # one busy process on 2 cores: one thread, its fair share
        (2, 2.0, 2, 1),  # two: still one thread, never 0
        (2, 6.0, 2, 1),  # heavily loaded
        (2, 0.0, 1, 1),  # never above torch's setting (the user's set_num_threads / OMP_NUM_THREADS)
        (16, 3.0, 16, 13),
        (16, 3.0, 8, 8),
        (16, 15.6, 16, 1),
        (1, 0.0, 4, 1),  # never above the cores
        (4, 0.0, 8, 4),
    ],
)
def test_choose_threads_table(cores, load, current, expected):
    assert cpu.choose_threads(cores, load, current) == expected


def test_training_threads(monkeypatch):
    monkeypatch.setattr(cpu, "usable_cores", lambda: 2)
    monkeypatch.setattr(cpu, "other_load", lambda: 1.0)
    assert cpu.training_threads(0, 2) == 1
    assert cpu.training_threads(3, 2) == 3  # explicit: as it is
    monkeypatch.setattr(cpu, "other_load", lambda: 0.0)
    assert cpu.training_threads(0, 2) == 2
    monkeypatch.setattr(cpu, "other_load", lambda: 24.0)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(cpu, "usable_cores", lambda: 8)  # 8 of 64 CPUs: an eighth of the load is ours to share
    assert cpu.training_threads(0, 8) == 5
    monkeypatch.setattr(cpu, "other_load", lambda: pytest.fail("one thread needs no look at the load"))
    assert cpu.training_threads(0, 1) == 1


def test_other_load_counts_other_tasks_only(monkeypatch):
    readings = iter([(5, 2), (3, 1), (1, 1)])
    monkeypatch.setattr(cpu, "_running_tasks", lambda: next(readings))
    assert cpu.other_load(samples=3, interval=0.0) == pytest.approx((3 + 2 + 0) / 3)
    monkeypatch.setattr(cpu, "_running_tasks", lambda: None)
    monkeypatch.setattr(os, "getloadavg", lambda: (4.5, 3.0, 2.0))
    assert cpu.other_load(samples=3, interval=0.0) == 4.5


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_running_tasks_sees_this_thread():
    total, own = cpu._running_tasks()
    assert own >= 1 and total >= own  # the thread reading /proc is running
    assert cpu.usable_cores() >= 1


class _ThreadSpy(GenerativeModel):
    config_class = ToyConfig

    def __init__(self, config):
        super().__init__(config)
        self.w = nn.Parameter(torch.zeros(1))
        self.seen = []

    def loss(self, batch):
        self.seen.append(torch.get_num_threads())
        return {"loss": (self.w - batch["x"].mean()) ** 2}

    def train_steps(self):
        return [TrainStep("s", [self], self.loss)]


@pytest.fixture
def torch_threads():
    """Restore torch's thread count after the test: later tests (the explorer's) rely on it."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_trainer_trains_on_its_threads_and_restores_them(tmp_path, torch_threads):
    from genlab.train import Trainer

    torch.set_num_threads(1)
    model = _ThreadSpy(ToyConfig(image_shape=(1, 6, 6)))
    t = Trainer(model, ToyData(n=32), tcfg(steps=2, threads=2), tmp_path)
    t.fit()
    assert model.seen == [2, 2] and t.threads == 2
    assert torch.get_num_threads() == 1
    auto = Trainer(_ThreadSpy(ToyConfig(image_shape=(1, 6, 6))), ToyData(n=32), tcfg(steps=1), tmp_path / "auto")
    assert auto.threads == 1  # train.threads=0 never raises torch's setting
    with pytest.raises(ConfigError, match="train.threads"):
        TrainConfig(threads=-1)


# --------------------------------------------------------------------------- OpenMP environment


def test_openmp_defaults_keep_the_users_settings():
    env = {}
    assert cpu.openmp_defaults(env) == {"OMP_WAIT_POLICY": "PASSIVE"} and env == {"OMP_WAIT_POLICY": "PASSIVE"}
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert cpu.openmp_defaults(env) == {} and env == {"OMP_WAIT_POLICY": "ACTIVE"}


@pytest.mark.slow
@pytest.mark.parametrize("torch_first", [False, True])
def test_genlab_command_sets_openmp_env_before_torch(torch_first):
    code = ("import torch\n" if torch_first else "") + "import os, genlab.cli\nprint(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    # imported after torch, the setting could no longer reach libgomp: it is left alone
    assert out.stdout.split() == (["None"] if torch_first else ["PASSIVE"]), out.stderr


# --------------------------------------------------------------------------- channels-last


def test_a_channels_last_model_trains_in_that_layout_and_resumes_bit_identically(tmp_path):
    """The memory layout is the model's setting (``model.channels_last``), not the Trainer's: a
    PixelCNN's masked weights stay NHWC through training, and a resumed run (Adam's moments read
    back in the weights' layout) is bit-identical to an uninterrupted one."""
    from genlab.train import Trainer
    from tiny import build

    data = ToyData(n=40, shape=(1, 5, 5), labelled=False)
    cfg = tcfg(steps=9, ema_decay=0.9)

    def fit(run_dir, steps, resume=False):
        torch.manual_seed(123)
        trainer = Trainer(build("pixelcnn", likelihood="bernoulli", channels_last=True), data, cfg, run_dir)
        if resume:
            assert trainer.restore() is not None
        trainer.fit(steps)
        return trainer

    full = fit(tmp_path / "full", 9)
    assert full.model.input_conv.weight.is_contiguous(memory_format=torch.channels_last)
    fit(tmp_path / "part", 4)
    torch.manual_seed(999)
    resumed = fit(tmp_path / "part", 9, resume=True)
    assert resumed.model.input_conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert_bit_identical(params_of(full.model), params_of(resumed.model))
    assert_bit_identical(full.ema.shadow, resumed.ema.shadow)
