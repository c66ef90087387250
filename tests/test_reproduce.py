"""benchmarks/reproduce.py: the learning-curve loop and one short end-to-end run per kind of metric."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import reproduce  # noqa: E402


class FakeTrainer:
    """fit(n) takes 0.25 s of a fake clock per step (exact in binary)."""

    def __init__(self, clock, budget=float("inf")):
        self.step, self.clock, self.budget, self.out_of_time = 0, clock, budget, False

    def fit(self, steps):
        while self.step < steps:
            if self.clock.t >= self.budget:
                self.out_of_time = True
                return
            self.clock.t += 0.25
            self.step += 1


class Clock:
    t = 0.0

    def __call__(self):
        return self.t


def test_curve_marks_are_equally_spaced_in_training_time_and_the_budget_is_kept():
    clock = Clock()
    trainer = FakeTrainer(clock)
    marks = []
    spent = reproduce.train_with_curve(trainer, 60.0, 4, lambda s: marks.append((s, trainer.step)), clock=clock)
    assert [m[1] for m in marks] == [60, 120, 180, 240]  # 15 s of 0.25 s steps per mark
    assert [round(m[0], 6) for m in marks] == [15.0, 30.0, 45.0, 60.0]
    assert spent == pytest.approx(60.0)


def test_the_trainers_own_budget_ends_the_curve():
    clock = Clock()
    trainer = FakeTrainer(clock, budget=20.0)  # train.max_seconds below the curve's 60 s
    marks = []
    reproduce.train_with_curve(trainer, 60.0, 4, lambda s: marks.append(trainer.step), clock=clock)
    assert marks == [60, 80] and trainer.out_of_time


@pytest.mark.parametrize("budget_clock", ["cpu", "wall"])
def test_the_curve_counts_time_in_the_clock_of_the_trainers_budget(monkeypatch, budget_clock):
    """Without an explicit clock, train_with_curve reads train.budget_clock: the budget's clock
    advances with the steps, the other clock runs 10x faster and must not end the curve early."""
    from types import SimpleNamespace

    budget, other = Clock(), Clock()
    trainer = FakeTrainer(budget)
    trainer.config = SimpleNamespace(budget_clock=budget_clock)

    class Fast:  # the clock that is not the budget's: 10x the training time
        def __call__(self):
            return 10 * budget.t + other.t

    cpu, wall = (budget, Fast()) if budget_clock == "cpu" else (Fast(), budget)
    monkeypatch.setattr(reproduce.harness.time, "process_time", cpu)
    monkeypatch.setattr(reproduce.harness.time, "perf_counter", wall)
    marks = []
    spent = reproduce.train_with_curve(trainer, 60.0, 4, lambda s: marks.append(trainer.step))
    assert marks == [60, 120, 180, 240] and spent == pytest.approx(60.0)


@pytest.mark.parametrize("clock", ["cpu", "wall"])
def test_the_run_config_counts_its_budget_in_the_chosen_clock(clock):
    args = reproduce.build_parser().parse_args(["vae", "--minutes", "2", "--clock", clock])
    cfg = reproduce.run_config(args)
    assert cfg.train.max_seconds == 120.0 and cfg.train.budget_clock == clock


def test_a_likelihood_model_prints_its_curve_and_the_papers_numbers(capsys, tmp_path):
    reproduce.main(
        [
            "vae",
            "--minutes",
            "0.005",
            "--evals",
            "2",
            "--eval-examples",
            "16",
            "--iw-samples",
            "2",
            "--out",
            str(tmp_path),
            "--set",
            "train.batch_size=16",
        ]
    )
    out = capsys.readouterr().out
    curve = [line for line in out.splitlines() if line.startswith("| 0.")]
    assert len(curve) == 2 and all(float(line.split("|")[4]) > 0 for line in curve)  # test NLL in nats
    assert "| 86.76" not in out and "test NLL nats 86.76" in out and "Burda et al. 2016, Table 1" in out
    assert "machine:" in out and "load average" in out


def test_a_sample_model_is_measured_with_fid(capsys, tmp_path):
    reproduce.main(
        [
            "dcgan",
            "--minutes",
            "0.005",
            "--evals",
            "1",
            "--eval-examples",
            "64",
            "--samples",
            "64",
            "--out",
            str(tmp_path),
            "--set",
            "train.batch_size=16",
        ]
    )
    out = capsys.readouterr().out
    assert "FID " in out and "none reported" in out
