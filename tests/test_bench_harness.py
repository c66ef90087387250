"""benchmarks/harness.py: machine line, flags, budget arithmetic and tables (no training, milliseconds)."""

from __future__ import annotations

import dataclasses
import io
import math
import re
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import harness  # noqa: E402
from genlab.config import TrainConfig  # noqa: E402
from genlab.train.trainer import lr_factor  # noqa: E402

CPUINFO = """processor\t: 0
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse avx2 fma avx512f avx512_bf16 amx_tile
processor\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse avx2 fma avx512f avx512_bf16 amx_tile
"""


def test_cpuinfo_gives_the_model_and_the_named_flags_in_table_order():
    assert harness.parse_cpuinfo(CPUINFO) == ("AMD EPYC 7B13", ["avx2", "fma", "avx512f", "avx512_bf16", "amx_tile"])
    assert harness.parse_cpuinfo("") == ("", [])
    assert harness.parse_cpuinfo("model name : X\nflags : sse avx512_bf16x\n") == ("X", [])  # whole flags only


def test_meminfo_in_gib():
    assert harness.parse_meminfo("MemFree: 1 kB\nMemTotal:       24641536 kB\n") == pytest.approx(24641536 / 2**20)
    assert harness.parse_meminfo("nothing here") is None


def machine(**changes) -> harness.Machine:
    base = dict(
        os="Linux-6.1-x86_64",
        cpu="AMD EPYC 7B13",
        flags=["avx512_bf16"],
        cpus=2,
        memory_gib=23.5,
        torch="2.13.0+cpu",
        threads=1,
        gpu="no GPU",
        python="3.11.7",
        load_start=0.44,
    )
    return harness.Machine(**{**base, **changes})


def test_machine_line_names_everything_a_figure_depends_on():
    assert machine().line(load_end=3.96) == (
        "machine: Linux-6.1-x86_64, AMD EPYC 7B13 (avx512_bf16), 2 CPUs, 23.5 GiB, no GPU; torch 2.13.0+cpu, 1 thread, "
        "Python 3.11.7; load average 0.4 at start, 4.0 at end"
    )
    line = machine(flags=[], memory_gib=None, threads=2, load_start=None, gpu="NVIDIA H200").line(load_end=1.0)
    assert "AMD EPYC 7B13, 2 CPUs, NVIDIA H200; torch 2.13.0+cpu, 2 threads," in line
    assert line.endswith("load average n/a at start, 1.0 at end")


def test_describe_reads_this_machine():
    m = harness.Machine.describe()
    assert m.cpus >= 1 and m.threads >= 1 and m.torch and m.python
    assert m.line().startswith("machine: ")


def test_parser_adds_only_the_common_flags_a_script_asks_for_with_its_defaults():
    ap = harness.parser("doc", minutes=8.0, threads=1)
    args = ap.parse_args([])
    assert vars(args) == {"minutes": 8.0, "clock": "cpu", "threads": 1}  # --minutes comes with the clock it counts
    assert ap.parse_args(["--minutes", "0.5", "--threads", "0"]).minutes == 0.5
    assert harness.clock_of(ap.parse_args(["--clock", "wall"])) is time.perf_counter
    assert harness.clock_of(args) is time.process_time
    assert harness.train_config(args, "vae", seconds=60).budget_clock == "cpu"
    assert harness.train_config(args, "vae").threads == 1  # --threads N is exactly N for the Trainer
    assert harness.train_config(ap.parse_args(["--threads", "0"]), "vae").threads == 0  # 0: the Trainer chooses
    with pytest.raises(SystemExit):
        ap.parse_args(["--clock", "gpu"])
    with pytest.raises(SystemExit):
        ap.parse_args(["--seed", "1"])  # not asked for
    full = harness.parser(None, data_dir=None, threads=2, minutes=1.0, seed=0, device="cpu", out="runs/x")
    args = full.parse_args(["--data-dir", "d", "--seed", "3", "--device", "cuda", "--out", "o"])
    assert (args.data_dir, args.threads, args.minutes, args.seed, args.device, args.out) == (
        "d",
        2,
        1.0,
        3,
        "cuda",
        "o",
    )


def test_default_data_dir_honours_the_variable_then_the_folder_beside_the_checkout(tmp_path, monkeypatch):
    """$GENLAB_SHARED_DATA, else ../shared/data beside the repository, else None: never a folder that is not there."""
    monkeypatch.setenv("GENLAB_SHARED_DATA", str(tmp_path))
    assert harness.default_data_dir() == str(tmp_path)
    beside = Path(harness.__file__).resolve().parents[1].parent / "shared" / "data"
    for absent in (str(tmp_path / "absent"), ""):  # a variable naming no folder is passed over, not returned
        monkeypatch.setenv("GENLAB_SHARED_DATA", absent)
        assert harness.default_data_dir() == (str(beside) if beside.is_dir() else None)
    monkeypatch.setattr(harness, "SHARED_DATA_BESIDE_CHECKOUT", tmp_path / "absent")
    assert harness.default_data_dir() is None
    monkeypatch.delenv("GENLAB_SHARED_DATA")
    assert harness.default_data_dir() is None


def test_setup_sets_threads_only_when_positive(monkeypatch):
    calls = []
    monkeypatch.setattr(harness.torch, "set_num_threads", calls.append)
    harness.setup(SimpleNamespace(threads=0))
    harness.setup(SimpleNamespace())
    harness.setup(SimpleNamespace(threads=3))
    assert calls == [3]


def test_out_dir_uses_out_or_a_fresh_temporary_folder(tmp_path):
    assert harness.out_dir(SimpleNamespace(out=str(tmp_path / "a" / "b")), "x-") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir()
    one, two = harness.out_dir(SimpleNamespace(out=None), "bench-"), harness.out_dir(SimpleNamespace(), "bench-")
    assert one != two and one.name.startswith("bench-") and one.is_dir()
    one.rmdir(), two.rmdir()


def test_train_config_is_quiet_and_takes_seed_and_device_from_the_flags():
    cfg = harness.train_config(SimpleNamespace(seed=7, device="cpu", minutes=3.0), "vae", steps=11, lr=2e-3)
    assert (cfg.progress, cfg.sample_every, cfg.checkpoint_every, cfg.log_every) == (False, 0, 0, 0)
    assert (cfg.seed, cfg.device, cfg.steps, cfg.lr) == (7, "cpu", 11, 2e-3)
    assert harness.train_config(None, "vae", log_every=5).log_every == 5
    with pytest.raises(ValueError, match="> 0 seconds"):
        harness.train_config(None, "vae", seconds=0)


def test_train_config_starts_from_the_models_registry_training_defaults():
    from genlab import registry

    for name in ("dcgan", "ali", "cyclegan", "progan"):
        cfg, ref = harness.train_config(None, name), registry.train_config(name)
        assert (cfg.lr, cfg.betas) == (ref.lr, ref.betas), name
    assert harness.train_config(None, "dcgan").betas != TrainConfig().betas  # the GAN betas, not Adam's defaults


def test_train_config_carries_the_budget_as_train_max_seconds():
    if "max_seconds" not in {f.name for f in dataclasses.fields(TrainConfig)}:
        pytest.skip("train.max_seconds is not in this tree's TrainConfig yet")
    cfg = harness.train_config(None, "vae", seconds=90)
    assert cfg.max_seconds == 90.0 and cfg.steps == harness.UNTIL_BUDGET
    assert harness.train_config(None, "vae", seconds=90, steps=500).steps == 500  # a schedule's end caps it too


def test_budget_run_config_keeps_the_presets_settings_and_hands_the_schedule_to_the_budget():
    args = SimpleNamespace(seed=3, device="cpu", clock="cpu")
    cfg = harness.budget_run_config(
        args, "vae", data="mnist", preset="mnist-10min", sets=["train.lr=3e-3", "model.latent_dim=8"]
    )
    t = cfg.train
    assert (t.progress, t.sample_every, t.checkpoint_every, t.log_every) == (False, 0, 0, 0)
    assert (t.seed, t.device, t.budget_clock, t.lr_schedule) == (3, "cpu", "cpu", "cosine")
    assert t.schedule_steps == t.steps > 10**6  # a placeholder: fit_schedule_to_budget sets the length
    assert t.max_seconds == 0.0  # the preset's own 10-minute cap gives way to the benchmark's --minutes
    assert (t.lr, t.ema_decay, t.warmup_steps) == (
        3e-3,
        0.999,
        100,
    )  # the override beats the preset, the rest is the preset's
    assert (cfg.model.decoder, cfg.model.latent_dim, cfg.data.name) == ("mlp", 8, "mnist")
    plain = harness.budget_run_config(SimpleNamespace(), "vae", data="mnist")  # (mnist-5k: the quick start preset)
    assert (plain.model.decoder, plain.train.budget_clock, plain.train.ema_decay) == ("upsample", "wall", 0.0)


def test_steps_for_a_budget():
    assert harness.steps_for(600, 0.25) == 2400
    assert harness.steps_for(10, 0.3) == 33  # rounded down: 33.3 steps fit
    assert harness.steps_for(1, 1.0) == 10 and harness.steps_for(1, 1.0, minimum=0) == 1
    with pytest.raises(ValueError):
        harness.steps_for(10, 0.0)


def test_next_estimate_closed_form():
    # 40 steps done at 10 steps/s with 6 s left: 100 in all; next look at 30% of that
    assert harness.next_estimate(40, 10.0, 6.0, 0.3) == (100, 40)
    assert harness.next_estimate(40, 10.0, 6.0, 0.6) == (100, 60)
    assert harness.next_estimate(40, 10.0, -5.0, 0.6) == (40, 40)  # overspent: stop here
    assert harness.next_estimate(40, 10.0, 6.0, 1.0) == (100, 100)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeTrainer:
    """Steps that cost ``per_step`` seconds on a fake clock; a scheduler whose lr_lambdas the harness replaces."""

    def __init__(self, clock: FakeClock, per_step: float, config: TrainConfig):
        self.clock, self.per_step, self.config, self.step, self.fits = clock, per_step, config, 0, []
        self.schedulers = {"vae": SimpleNamespace(lr_lambdas=[None])}

    def fit(self, steps: int) -> None:
        self.fits.append(steps)
        if steps > self.step:
            self.clock.now += (steps - self.step) * self.per_step
            self.step = steps


def test_seconds_per_step_times_only_the_iterations_after_the_warm_up(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(harness.time, "perf_counter", clock)
    trainer = FakeTrainer(clock, 0.25, TrainConfig())
    assert harness.seconds_per_step(trainer, timed=30, warm=5) == pytest.approx(0.25)
    assert trainer.fits == [5, 35]
    with pytest.raises(ValueError):
        harness.seconds_per_step(trainer, timed=0)


def test_fit_until_gives_one_run_its_budget_in_stages():
    from genlab.config import RunConfig
    from genlab.models.vae import VAEConfig

    fits = []
    trainer = SimpleNamespace(
        config=TrainConfig(steps=10), run_config=RunConfig("vae", VAEConfig()), fit=lambda: fits.append(trainer.config)
    )
    harness.fit_until(trainer, 30)
    harness.fit_until(trainer, 90.5)
    assert [(c.max_seconds, c.steps) for c in fits] == [(30.0, harness.UNTIL_BUDGET), (90.5, harness.UNTIL_BUDGET)]
    assert trainer.run_config.train == trainer.config  # what config.json records


def test_until_stops_when_the_time_is_spent():
    clock = FakeClock()
    seen = []
    for i in harness.until(1.0, clock=clock):
        seen.append(i)
        clock.now += 0.3
    assert seen == [0, 1, 2, 3]  # at 0.0, 0.3, 0.6, 0.9 s


def test_fit_schedule_to_budget_uses_the_whole_budget_and_stretches_the_schedule(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(harness.time, "perf_counter", clock)
    cfg = TrainConfig(steps=10**6, lr_schedule="cosine", schedule_steps=10**6, batch_size=4)
    trainer = FakeTrainer(clock, 0.1, cfg)
    log = []
    steps = harness.fit_schedule_to_budget(trainer, 10.0, first=30, warm=10, log=log.append)
    # 10 steps/s for 10 s: 100 steps, the last exactly at the budget
    assert steps == 100 and trainer.step == 100 and clock.now == pytest.approx(10.0)
    assert trainer.config.steps == trainer.config.schedule_steps == 100
    assert trainer.fits[:2] == [10, 40] and trainer.fits[-1] == 100
    assert "40 images/s -> 100 steps in all" in log[0]
    stretched = trainer.schedulers["vae"].lr_lambdas[0]
    for k in (0, 50, 99):
        assert stretched(k) == pytest.approx(lr_factor(k, trainer.config))
    assert stretched(50) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)), abs=0.02)


def test_markdown_table_escapes_pipes_and_refuses_ragged_rows():
    text = harness.markdown_table(["a", "b|c"], [[1, "x|y"], ["", 2.5]])
    assert text.splitlines() == ["| a | b\\|c |", "|---|---|", "| 1 | x\\|y |", "|  | 2.5 |"]
    with pytest.raises(ValueError, match="2 columns"):
        harness.markdown_table(["a", "b"], [[1]])


def test_table_prints_as_it_fills_and_ends_with_the_machine_line():
    out = io.StringIO()
    t = harness.Table(["model", "NLL"], title="results", stream=out)
    assert out.getvalue() == ""  # nothing before the first row
    t.add("vae", "86.33")
    t.add("iaf", "86.07")
    with pytest.raises(ValueError):
        t.add("too", "many", "cells")
    t.finish(machine(), "note one")
    lines = out.getvalue().splitlines()
    assert lines[:7] == ["", "**results**", "", "| model | NLL |", "|---|---|", "| vae | 86.33 |", "| iaf | 86.07 |"]
    assert lines[7] == "" and lines[8] == "note one" and lines[9].startswith("machine: Linux-6.1-x86_64, AMD EPYC 7B13")
    assert t.markdown() == harness.markdown_table(["model", "NLL"], [["vae", "86.33"], ["iaf", "86.07"]])


SCRIPTS = sorted(p for p in (Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py") if p.name != "harness.py")


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_every_benchmark_script_stands_on_the_harness(script):
    """A new script gets its flags, machine line, budget and tables from the harness, not its own copy."""
    text = script.read_text()
    shared = re.search(r"from \w+ import [^\n]*\b\w*parser\b", text)  # a sibling script's parser, itself checked here
    assert "def build_parser(" in text and ("harness.parser(" in text or shared), (
        "flags: build_parser() on harness.parser"
    )
    assert not re.search(r"def machine\(|(?<!sys\.)platform\.|getloadavg", text), (
        "the machine line is harness.Machine's"
    )
    assert not re.search(r"""print\(f?["']\\?n?\|""", text), "tables go through harness.Table"
    assert not re.search(r"while[^\n]*perf_counter", text), "budgets: train.max_seconds or the harness's helpers"
    checkout = Path(__file__).resolve().parents[1]  # this machine's folders, not a user's
    for folder in (checkout, checkout.parent / "shared"):
        assert str(folder) + "/" not in text, (
            "no folder of one machine: --data-dir defaults to harness.default_data_dir()"
        )


class ReplayModel:
    """A 'generative model' whose samples are given images, in order (generate_samples' interface)."""

    def __init__(self, images):
        self.images, self.served = images, 0
        self.device = torch.device("cpu")
        self.config = SimpleNamespace(num_classes=0)

    def sample(self, n, generator=None, labels=None):
        out = self.images[self.served : self.served + n]
        self.served += n
        return out


def digit_like_images(n: int, seed: int = 0):
    """n blurred random strokes (uint8, (n, 1, 28, 28)): anything the classifier has an opinion on."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 1, 28, 28, generator=g) > 0.8).float()
    x = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    return (x / x.amax((1, 2, 3), keepdim=True).clamp_min(1e-6) * 255).round().to(torch.uint8)


@pytest.mark.slow
def test_sample_quality_judges_the_samples_with_the_shipped_classifier(tmp_path):
    from genlab.metrics.features import get_feature_net

    images = digit_like_images(120)
    test = SimpleNamespace(images=images, name="fake", labels=None)
    q = harness.sample_quality(
        ReplayModel(images.float() / 255), test, samples=120, seed=0, out=tmp_path, batch_size=50
    )
    assert q["fid"] == pytest.approx(0.0, abs=1e-3)  # the samples are the reference images themselves
    pred = get_feature_net("mnist").logits(images.float() / 255).argmax(1)  # the classifier, called directly
    expect = torch.bincount(pred, minlength=10).double() / 120
    assert q["shares"] == pytest.approx(expect.tolist()) and sum(q["shares"]) == pytest.approx(1.0)
    assert q["digits_above_1pct"] == int((expect > 0.01).sum()) and 0.1 <= q["confidence"] <= 1.0
    assert q["samples"] == 120 and q["reference"] == 120 and (tmp_path / "samples.png").exists()
    line = harness.quality_line(q)
    assert line.startswith("FID 0.00,") and f"{q['digits_above_1pct']}/10 digits above 1%" in line

    blank = harness.sample_quality(ReplayModel(torch.zeros(120, 1, 28, 28)), test, samples=120, seed=0)
    assert (
        blank["fid"] > 1.0 and blank["digits_above_1pct"] == 1 and max(blank["shares"]) == 1.0 and blank["png"] is None
    )


def test_write_json_turns_tensors_into_numbers(tmp_path):
    import json

    harness.write_json(tmp_path / "r.json", {"a": torch.tensor([1.5, 2.0]), "b": torch.tensor(3).double(), "c": "x"})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": [1.5, 2.0], "b": 3.0, "c": "x"}


@pytest.mark.slow
def test_a_multi_thread_benchmark_restarts_with_passive_openmp(tmp_path):
    """From the command line with --threads 2 a script runs again with OMP_WAIT_POLICY=PASSIVE
    (read by OpenMP when torch loads, so it must be set before); with 1 thread, or with the
    variable set by the user, it runs once as it is."""
    import os
    import subprocess

    script = tmp_path / "probe.py"
    script.write_text(
        "\n".join(
            [
                "import os, sys",
                f"sys.path.insert(0, {str(Path(harness.__file__).parent)!r})",
                "import harness",
                "args, _ = harness.start(harness.parser('probe', threads=2))",
                "print('policy', os.environ.get('OMP_WAIT_POLICY'), args.threads)",
                "",
            ]
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}

    def run(*flags, **extra):
        out = subprocess.run(
            [sys.executable, str(script), *flags], env={**env, **extra}, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().splitlines()

    assert run("--threads", "2") == ["policy PASSIVE 2"]
    assert run("--threads", "1") == ["policy None 1"]
    assert run("--threads", "2", OMP_WAIT_POLICY="ACTIVE") == ["policy ACTIVE 2"]
