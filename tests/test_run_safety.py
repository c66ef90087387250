"""Runs are never lost or half-written: the wall-clock budget (train.max_seconds)
across resumes, resume/train refusing what would overwrite or leave an unusable
folder, and one-line errors for unwritable output locations and a full disk."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import genlab  # noqa: E402
from genlab.cli import main  # noqa: E402
from genlab.errors import ConfigError, WriteError  # noqa: E402
from genlab.train.checkpoint import list_checkpoints, load_checkpoint  # noqa: E402
from toys import NoisyAE, ToyConfig, ToyData, assert_bit_identical, run_cfg, tcfg  # noqa: E402

TINY = [
    "--data",
    "digits",
    "--set",
    "train.batch_size=16",
    "--set",
    "train.progress=false",
    "--set",
    "train.sample_every=0",
    "--set",
    "model.latent_dim=2",
    "--set",
    "model.hidden_dim=16",
]


def snapshot(folder: Path) -> dict:
    """Every file below ``folder``: relative path -> bytes (folders as None)."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("genlab ") and "\n" not in err and "Traceback" not in err, err
    return err


# --------------------------------------------------------------------------- train.max_seconds


class Clock:
    """A fake wall clock: each training iteration of :class:`Ticking` takes exactly 1 s."""

    t = 0.0

    def __call__(self) -> float:
        return self.t


CLOCK = Clock()


class Ticking(NoisyAE):
    def loss(self, batch):
        CLOCK.t += 1.0
        return super().loss(batch)


@pytest.fixture
def ticking(monkeypatch):
    from genlab import registry
    from genlab.train.trainer import Trainer

    monkeypatch.setitem(registry.MODELS, "toy-tick", registry.ModelEntry(ToyConfig, Ticking))
    monkeypatch.setattr(Trainer, "clock", staticmethod(CLOCK))
    CLOCK.t = 1000.0


def test_max_seconds_stops_at_a_step_boundary_and_the_budget_survives_resume(tmp_path, ticking):
    from genlab.train import resume, train

    data = ToyData(n=40)
    run = train(
        run_cfg("toy-tick", steps=20, checkpoint_every=4, max_seconds=5.5), out_dir=str(tmp_path / "a"), dataset=data
    )
    # iterations start at 0, 1, ..., 5 s; at 6 s the budget is spent: stop after step 6, saved as at a normal end
    assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [4, 6]
    weights, state, step = load_checkpoint(run / "checkpoints" / "step-0000006")
    assert step == 6 and state["elapsed"] == 6.0
    assert_bit_identical(genlab.load(run).state_dict(), weights["model"])

    # resuming with the same budget: already spent, nothing trains
    with pytest.warns(UserWarning, match="already spent"):
        resume(run, steps=20, dataset=data)
    assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [4, 6]

    # a larger budget counts the 6 s already spent: 4 more iterations (6, 7, 8, 9 s), not 9
    resume(run, steps=20, dataset=data, max_seconds=9.5)
    assert list_checkpoints(run / "checkpoints")[-1][0] == 10
    assert json.loads((run / "config.json").read_text())["train"]["max_seconds"] == 9.5
    straight = train(run_cfg("toy-tick", steps=10, checkpoint_every=4), out_dir=str(tmp_path / "b"), dataset=data)
    assert_bit_identical(genlab.load(run).state_dict(), genlab.load(straight).state_dict())


def test_max_seconds_off_and_larger_than_needed_change_nothing(tmp_path, ticking):
    from genlab.train import Trainer

    data = ToyData(n=40)
    a = Trainer(Ticking(ToyConfig(image_shape=(1, 6, 6))), data, tcfg(steps=5), tmp_path / "a")
    torch.manual_seed(0)
    b = Trainer(Ticking(ToyConfig(image_shape=(1, 6, 6))), data, tcfg(steps=5, max_seconds=5.0), tmp_path / "b")
    a.fit(), b.fit()
    assert a.step == b.step == 5 and not a.out_of_time and not b.out_of_time


class Sleepy(NoisyAE):
    """Each iteration sleeps 0.2 s of wall-clock time and burns next to no CPU."""

    def loss(self, batch):
        import time

        time.sleep(0.2)
        return super().loss(batch)


def test_budget_clock_cpu_counts_cpu_time_not_waiting(tmp_path):
    """budget_clock=cpu: time spent waiting (here sleeping; on a busy machine, for a core)
    does not use up the budget, so the same budget does the same work; wall: it does."""
    from genlab.train import Trainer

    data = ToyData(n=40)
    wall = Trainer(Sleepy(ToyConfig(image_shape=(1, 6, 6))), data, tcfg(steps=30, max_seconds=0.5), tmp_path / "wall")
    cpu = Trainer(
        Sleepy(ToyConfig(image_shape=(1, 6, 6))),
        data,
        tcfg(steps=6, max_seconds=0.5, budget_clock="cpu"),
        tmp_path / "cpu",
    )
    wall.fit(), cpu.fit()
    assert wall.out_of_time and wall.step <= 4  # 0.2 s a step: out of time after 3
    assert not cpu.out_of_time and cpu.step == 6  # 1.2 s of sleeping is well under 0.5 CPU-seconds
    with pytest.raises(ConfigError, match="budget_clock"):
        tcfg(budget_clock="gpu")


@pytest.mark.parametrize("bad", [-1.0, float("inf"), float("nan")])
def test_max_seconds_must_be_finite_and_non_negative(tmp_path, bad):
    from genlab.train import Trainer

    with pytest.raises(ConfigError, match="max_seconds"):
        Trainer(NoisyAE(ToyConfig(image_shape=(1, 6, 6))), ToyData(), tcfg(max_seconds=bad), tmp_path)


# --------------------------------------------------------------------------- data loss


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("safety") / "run"
    assert (
        main(
            [
                "train",
                "vae",
                "--out",
                str(out),
                "--steps",
                "4",
                "--set",
                "train.checkpoint_every=2",
                "--set",
                "train.log_every=1",
                *TINY,
            ]
        )
        == 0
    )
    return out


def test_resume_without_checkpoints_refuses_and_changes_nothing(cli_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "no-ckpt"
    shutil.copytree(cli_run, run)
    shutil.rmtree(run / "checkpoints")
    saved = genlab.load(cli_run).save(tmp_path / "saved")
    for folder in (run, saved):
        before = snapshot(folder)
        assert main(["resume", str(folder), "--steps", "8"]) == 2
        assert "cannot resume" in one_line_error(capsys)
        assert snapshot(folder) == before
    assert main(["resume", str(tmp_path / "nothing-here"), "--steps", "8"]) == 2
    assert "no run folder" in one_line_error(capsys) and not (tmp_path / "nothing-here").exists()


def test_train_with_zero_steps_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "vae", "--steps", "0", "--out", str(tmp_path / "z"), *TINY]) == 2
    assert "at least 1 step" in one_line_error(capsys)
    assert main(["train", "vae", "--steps", "0", *TINY]) == 2
    one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_a_refused_model_or_train_setting_leaves_no_folder(tmp_path, capsys):
    for bad in (["--set", "model.latent_dim=0"], ["--set", "train.batch_size=100000"]):
        assert main(["train", "vae", "--steps", "2", "--out", str(tmp_path / "run"), *TINY, *bad]) == 2
        one_line_error(capsys)
        assert not (tmp_path / "run").exists()


def test_train_refuses_a_folder_holding_a_saved_model(cli_run, tmp_path, capsys):
    saved = genlab.load(cli_run).save(tmp_path / "saved")
    before = snapshot(saved)
    assert main(["train", "vae", "--steps", "2", "--out", str(saved), *TINY]) == 2
    assert "already holds" in one_line_error(capsys)
    assert snapshot(saved) == before


@pytest.mark.parametrize("where", ["under-a-file", "an-existing-file"])
def test_out_that_cannot_be_a_folder_is_one_line(tmp_path, capsys, where):
    blocker = tmp_path / "file.txt"
    blocker.write_text("keep me")
    out = blocker / "run" if where == "under-a-file" else blocker
    assert main(["train", "vae", "--steps", "2", "--out", str(out), *TINY]) == 2
    err = one_line_error(capsys)
    assert ("is a file, not a folder" if where == "under-a-file" else "it is an existing file") in err
    assert blocker.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A folder on a (simulated) read-only file system: creating anything below it fails
    with EROFS, as on a read-only mount (chmod alone does not stop root)."""
    root = tmp_path / "ro"
    root.mkdir()
    real_mkdir, real_open = os.mkdir, os.open

    def refuse(path):
        if str(Path(path).absolute()).startswith(str(root) + os.sep):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    def mkdir(path, *a, **k):
        refuse(path)
        return real_mkdir(path, *a, **k)

    def open_(path, flags, *a, **k):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refuse(path)
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", open_)
    return root


def test_out_on_a_read_only_location_is_one_line(cli_run, read_only, capsys):
    assert main(["train", "vae", "--steps", "2", "--out", str(read_only / "run"), *TINY]) == 2
    assert "read-only file system" in one_line_error(capsys)
    assert main(["sample", str(cli_run), "-n", "4", "--out", str(read_only / "s.png")]) == 2
    assert "cannot write" in one_line_error(capsys)
    assert list(read_only.iterdir()) == []


def test_a_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, capsys, monkeypatch):
    import genlab.train.checkpoint as ck

    real = ck.write_synced

    def write_synced(path, data):
        if ".tmp-step-0000004" in str(path) and path.name == "state.safetensors":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data)

    monkeypatch.setattr(ck, "write_synced", write_synced)
    run = tmp_path / "run"
    assert main(["train", "vae", "--out", str(run), "--steps", "6", "--set", "train.checkpoint_every=2", *TINY]) == 2
    err = one_line_error(capsys)
    assert "step 4" in err and "No space left on device" in err and "checkpoint is step 2" in err
    assert [s for s, _ in list_checkpoints(run / "checkpoints")] == [2]
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-0000002"]  # no half-written folder left
    weights, _, _ = load_checkpoint(run / "checkpoints" / "step-0000002")
    assert_bit_identical(genlab.load(run).state_dict(), weights["model"])
    monkeypatch.setattr(ck, "write_synced", real)  # space freed: the run continues from step 2
    assert main(["resume", str(run), "--steps", "6"]) == 0
    assert list_checkpoints(run / "checkpoints")[-1][0] == 6


def test_write_errors_are_oserrors_and_genlab_errors(tmp_path):
    from genlab.io import atomic_write_bytes

    (tmp_path / "f").write_text("x")
    with pytest.raises(WriteError) as e:
        atomic_write_bytes(tmp_path / "f" / "g.bin", b"1")
    assert isinstance(e.value, OSError) and "is an existing file" in str(e.value)
    (tmp_path / "d").mkdir()
    with pytest.raises(WriteError):
        atomic_write_bytes(tmp_path / "d", b"1")  # a folder where the file should go
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == []


def test_an_unwritable_metrics_log_is_a_write_error(tmp_path):
    from genlab.train import Trainer

    (tmp_path / "metrics.jsonl").mkdir()  # a folder where the log file should be
    t = Trainer(NoisyAE(ToyConfig(image_shape=(1, 6, 6))), ToyData(), tcfg(steps=2, log_every=1), tmp_path)
    with pytest.raises(WriteError, match="cannot append to .*metrics.jsonl"):
        t.fit()


# --------------------------------------------------------------------------- one process per run folder

_HOLD = (
    "import sys; from genlab.train.runs import run_lock\n"
    "with run_lock(sys.argv[1]):\n    print('held', flush=True)\n    sys.stdin.readline()\n"
)


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(Path(genlab.__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}


@contextmanager
def held_by_another_process(folder: Path):
    """Another process holds ``folder``'s lock inside the block; yields its pid. It lets go when the block ends."""
    p = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_env()
    )
    try:
        assert p.stdout.readline().strip() == b"held"
        yield p.pid
    finally:
        p.communicate(b"\n", timeout=60)


@pytest.mark.slow
def test_train_and_resume_refuse_a_run_folder_another_process_uses(cli_run, tmp_path, capsys):
    import shutil

    run, new = tmp_path / "run", tmp_path / "new"
    shutil.copytree(cli_run, run)
    new.mkdir()
    for folder, argv in (
        (run, ["resume", str(run), "--steps", "6", "--no-report"]),
        (new, ["train", "vae", "--steps", "2", "--out", str(new), "--no-report", *TINY]),
    ):
        with held_by_another_process(folder) as pid:
            before = snapshot(folder)
            assert main(argv) == 2
            assert one_line_error(capsys) == (
                f"genlab {argv[0]}: error: run folder {folder} is in use by another genlab process "
                f"(pid {pid}); wait for it or choose another --out"
            )
            assert snapshot(folder) == before
        assert not (folder / ".lock").exists()  # released and removed by its holder
        assert main(argv) == 0  # free again
        assert not (folder / ".lock").exists()


@pytest.mark.slow
def test_two_trains_into_one_folder_started_together_one_fails(tmp_path):
    out = tmp_path / "same"
    argv = [sys.executable, "-m", "genlab", "train", "vae", "--steps", "200", "--out", str(out), "--no-report", *TINY]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()) for _ in range(2)
    ]
    results = [(p.wait(timeout=600), p.stderr.read().strip()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    err = next(e for code, e in results if code == 2)
    assert "\n" not in err and (
        "is in use by another genlab process" in err or "already holds a trained model" in err
    ), err
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [50, 100, 150, 200]  # one run's log, not two interleaved
    assert [s for s, _ in list_checkpoints(out / "checkpoints")] == [200] and not (out / ".lock").exists()


def test_the_lock_is_released_on_an_exception_or_ctrl_c(tmp_path):
    from genlab.errors import RunInUseError
    from genlab.train.runs import run_lock

    for interrupt in (KeyboardInterrupt, RuntimeError):
        with pytest.raises(interrupt):
            with run_lock(tmp_path):
                assert (tmp_path / ".lock").read_text() == f"{os.getpid()}\n"
                raise interrupt
        assert not (tmp_path / ".lock").exists()
    with run_lock(tmp_path):
        with pytest.raises(RunInUseError, match=f"pid {os.getpid()}"):
            with run_lock(tmp_path):  # a second hold, even from this process, is refused
                pass
        assert (tmp_path / ".lock").exists()


def test_a_resume_with_nothing_to_do_leaves_the_folder_byte_identical(cli_run, tmp_path, capsys):
    import shutil

    run = Path(shutil.copytree(cli_run, tmp_path / "run"))  # at step 4, with report.html
    before = snapshot(run)
    for steps, budget in (("2", []), ("4", []), ("4", ["--max-seconds", "1000"])):
        assert main(["resume", str(run), "--steps", steps, *budget]) == 0
        assert snapshot(run) == before, steps
    doc = json.loads((run / "config.json").read_text())
    assert doc["train"]["steps"] == 4
    assert main(["resume", str(run), "--steps", "5", "--no-report"]) == 0  # with work to do it writes, as before
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 5 and snapshot(run) != before
