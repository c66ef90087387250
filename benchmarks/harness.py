"""What every benchmark script shares: the machine, the flags, the data, the budget, the tables.

A benchmark is a script in ``benchmarks/`` that measures something and prints
markdown tables; it is not a test. This module holds the pieces they all need,
so that each script says only what it measures:

* :class:`Machine` -- one line describing where a figure came from: OS, CPU model
  and the instruction-set flags that change training speed (``avx512_bf16``,
  ``amx_bf16``, ...), CPUs, memory, torch version and threads, the GPU if any, and
  the load average at the start and at the end of the run (other jobs sharing
  the cores slow everything down, so a figure without its load is half a figure);
* :func:`parser` / :func:`start` -- the common flags (``--data-dir``,
  ``--threads``, ``--minutes`` (with ``--clock``: CPU or wall-clock minutes), ``--seed``,
  ``--device``, ``--out``), each added only where a script uses it, with that script's
  own default;
* :func:`load`, :func:`splits` and :func:`test_images` -- data sets by name, from ``--data-dir``
  (whose default, :func:`default_data_dir`, is ``$GENLAB_SHARED_DATA`` or ``../shared/data``);
* :func:`train_config` -- a quiet :class:`~genlab.config.TrainConfig` (no progress
  bar, samples or periodic checkpoints) carrying the wall-clock budget as
  ``train.max_seconds``, which the Trainer itself honours (it stops the run
  when that much training time has passed, counted across resumes);
  :func:`fit_until` trains a run in stages of one budget;
  :func:`seconds_per_step`, :func:`steps_for`, :func:`until` and
  :func:`fit_schedule_to_budget` turn a budget into steps when a learning-rate
  schedule needs to know its length in advance;
* :func:`sample_quality` -- the one sample-quality protocol of the MNIST benchmarks (FID/KID
  and digit shares in the shipped MNIST classifier's features), so that models compare;
* :class:`Table` -- markdown tables, printed row by row as results arrive, with
  the machine line under them.

The scripts import it as ``harness`` (run them as ``python benchmarks/NAME.py``,
which puts this folder on ``sys.path``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence, TextIO

import torch

#: ``--steps`` of a run that is meant to stop at its wall-clock budget, not at a step count.
UNTIL_BUDGET = 10**9

#: CPU flags worth naming in a machine line: each changes which kernels torch can use.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


# --------------------------------------------------------------------------- the machine


def parse_cpuinfo(text: str) -> tuple[str, list[str]]:
    """(CPU model name, the :data:`CPU_FLAGS` it has, in that order) from ``/proc/cpuinfo`` text.

    An empty text, or one without ``model name``/``flags`` lines (not Linux x86),
    gives ``("", [])``.
    """
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return model, [f for f in CPU_FLAGS if f in flags]


def parse_meminfo(text: str) -> float | None:
    """Total memory in GiB from ``/proc/meminfo`` text (``MemTotal: N kB``); None when absent."""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024 / 2**30
    return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def load_average() -> float | None:
    """The 1-minute load average, or None where the OS has none (Windows)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


@dataclasses.dataclass
class Machine:
    """Where a benchmark ran. :meth:`describe` at the start; :meth:`line` reads the load again at the end."""

    os: str
    cpu: str
    flags: list[str]
    cpus: int
    memory_gib: float | None
    torch: str
    threads: int
    gpu: str
    python: str
    load_start: float | None

    @classmethod
    def describe(cls) -> "Machine":
        cpu, flags = parse_cpuinfo(_read("/proc/cpuinfo"))
        gpu = "no GPU"
        if torch.cuda.is_available():
            gpu = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return cls(
            os=platform.platform(),
            cpu=cpu or platform.processor() or platform.machine(),
            flags=flags,
            cpus=os.cpu_count() or 1,
            memory_gib=parse_meminfo(_read("/proc/meminfo")),
            torch=torch.__version__,
            threads=torch.get_num_threads(),
            gpu=gpu,
            python=platform.python_version(),
            load_start=load_average(),
        )

    def line(self, load_end: float | None = None) -> str:
        """``machine: OS, CPU (flags), N CPUs, M GiB, GPU; torch V, T threads, Python P;
        load average a at start, b at end``.

        ``load_end`` defaults to the load average now.
        """
        load_end = load_average() if load_end is None else load_end
        fmt = lambda v: "n/a" if v is None else f"{v:.1f}"  # noqa: E731
        cpu = f"{self.cpu} ({' '.join(self.flags)})" if self.flags else self.cpu
        memory = f", {self.memory_gib:.1f} GiB" if self.memory_gib is not None else ""
        return (
            f"machine: {self.os}, {cpu}, {self.cpus} CPUs{memory}, {self.gpu}; torch {self.torch}, "
            f"{self.threads} thread{'s' if self.threads != 1 else ''}, Python {self.python}; "
            f"load average {fmt(self.load_start)} at start, {fmt(load_end)} at end"
        )


# --------------------------------------------------------------------------- flags

_ABSENT = object()


def parser(
    doc: str | None, *, data_dir=_ABSENT, threads=_ABSENT, minutes=_ABSENT, seed=_ABSENT, device=_ABSENT, out=_ABSENT
) -> argparse.ArgumentParser:
    """An argument parser with the common flags this script uses, at its own defaults.

    A flag is added only when its keyword is given (``minutes=8.0`` adds
    ``--minutes`` with default 8.0; leave it out and the script has no
    ``--minutes``). ``doc`` (the script's docstring) becomes the help text.
    ``--threads 0`` keeps torch's own default.
    """
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    if data_dir is not _ABSENT:
        ap.add_argument(
            "--data-dir",
            default=data_dir,
            help="folder of local data sets, as <dir>/<name>/<files> (default %(default)s; "
            "None: genlab's cache or a download)",
        )
    if threads is not _ABSENT:
        ap.add_argument(
            "--threads", type=int, default=threads, help="torch threads; 0 keeps torch's default (default %(default)s)"
        )
    if minutes is not _ABSENT:
        ap.add_argument(
            "--minutes", type=float, default=minutes, help="training budget in minutes of --clock (default %(default)s)"
        )
        ap.add_argument(
            "--clock",
            choices=("cpu", "wall"),
            default="cpu",
            help="what --minutes counts: cpu = CPU time of the process over all its threads (the same work on a busy "
            "machine as on an idle one), wall = elapsed time (train.budget_clock; default %(default)s)",
        )
    if seed is not _ABSENT:
        ap.add_argument("--seed", type=int, default=seed, help="random seed (default %(default)s)")
    if device is not _ABSENT:
        ap.add_argument("--device", default=device, help="torch device for training (default %(default)s)")
    if out is not _ABSENT:
        ap.add_argument(
            "--out",
            default=out,
            help="output folder (default %(default)s)" if out else "output folder (default: a fresh temporary folder)",
        )
    return ap


def setup(args: argparse.Namespace) -> Machine:
    """Apply ``--threads`` (when > 0) and describe the machine, whose load average is read now."""
    threads = getattr(args, "threads", 0) or 0
    if threads > 0:
        torch.set_num_threads(threads)
    return Machine.describe()


def start(ap: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, Machine]:
    """Parse the flags (``argv``, default the command line) and :func:`setup`: (args, machine).

    Run from the command line (``argv`` None) with more than one thread and no ``OMP_WAIT_POLICY``
    set, the script first restarts itself with ``OMP_WAIT_POLICY=PASSIVE``, as the ``genlab``
    command does: OpenMP reads it when torch loads, and spinning threads on a shared machine cost
    a multi-thread run most of its speed (pixelcnn_mnist.py, 2 threads beside one busy process:
    38 images/s, against 160 on 1 thread)."""
    args = ap.parse_args(argv)
    if argv is None and getattr(args, "threads", 1) != 1 and "OMP_WAIT_POLICY" not in os.environ:
        from genlab.train.cpu import openmp_defaults

        env = dict(os.environ)
        openmp_defaults(env)
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    return args, setup(args)


def out_dir(args: argparse.Namespace, prefix: str) -> Path:
    """``--out`` as a created folder, or a fresh temporary folder named ``prefix...``."""
    import tempfile

    path = Path(args.out) if getattr(args, "out", None) else Path(tempfile.mkdtemp(prefix=prefix))
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- data

#: The shared data folder's place beside a checkout (``<repo>/../shared/data``).
SHARED_DATA_BESIDE_CHECKOUT = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def default_data_dir() -> str | None:
    """The default of ``--data-dir``: ``$GENLAB_SHARED_DATA``, else ``../shared/data`` beside
    the checkout, the first of them that is a folder; None where neither is (data sets then
    come from genlab's cache or a download). Never a path that does not exist."""
    for candidate in (os.environ.get("GENLAB_SHARED_DATA"), SHARED_DATA_BESIDE_CHECKOUT):
        if candidate and Path(candidate).is_dir():
            return str(candidate)
    return None


def load(name: str, split: str, args: argparse.Namespace):
    """The data set ``name`` (``genlab datasets``), split ``split``, from ``--data-dir``."""
    from genlab import data

    return data.load(name, split, data_dir=getattr(args, "data_dir", None))


def splits(name: str, args: argparse.Namespace):
    """(train, test) splits of the data set ``name`` from ``--data-dir``."""
    return load(name, "train", args), load(name, "test", args)


def test_images(name: str, args: argparse.Namespace, n: int) -> torch.Tensor:
    """The first ``n`` test images of ``name`` as floats in [0, 1], (n, C, H, W)."""
    from genlab.data import transforms

    return transforms.to_float(load(name, "test", args).images[:n])


# --------------------------------------------------------------------------- the budget


def train_config(args: argparse.Namespace | None, model: str, *, seconds: float | None = None, **fields):
    """A quiet TrainConfig for a benchmark run of ``model``; ``seconds`` becomes ``train.max_seconds``,
    counted by ``args.clock`` (``train.budget_clock``: CPU or wall-clock seconds) when the script has ``--clock``.

    Starts from the registry's training defaults of ``model`` (its paper's learning
    rate and betas, as ``genlab train`` does). Quiet: no progress bar, no sample
    grids, no periodic checkpoints (the Trainer still writes its final one).
    ``seed``, ``device`` and ``threads`` (when > 0) come from ``args`` when it has them; ``fields``
    override anything. With ``seconds`` and no ``steps``, the run is meant to stop
    at its budget: ``steps`` is :data:`UNTIL_BUDGET`.
    """
    from genlab import registry

    base = dict(progress=False, sample_every=0, checkpoint_every=0, log_every=0)
    for key, field in (("seed", "seed"), ("device", "device"), ("clock", "budget_clock")):
        if args is not None and hasattr(args, key):
            base[field] = getattr(args, key)
    if getattr(
        args, "threads", 0
    ):  # --threads N is N (train.threads), not lowered by the Trainer's choice from the load
        base["threads"] = args.threads
    if seconds is not None:
        if seconds <= 0:
            raise ValueError(f"a wall-clock budget must be > 0 seconds, got {seconds}")
        base.update(max_seconds=float(seconds), steps=UNTIL_BUDGET)
    return registry.train_config(model, **{**base, **fields})


def budget_run_config(
    args: argparse.Namespace,
    model: str,
    *,
    data: str | None = None,
    preset: str | None = None,
    sets: Sequence[str] = (),
):
    """The RunConfig of ``genlab train MODEL --data DATA --preset PRESET --set ...`` made ready for
    :func:`fit_schedule_to_budget`: quiet (as :func:`train_config`), ``seed``, ``device`` and the
    budget's clock from ``args``, and a cosine schedule (a placeholder length, which the budget
    then sets during the run) with no ``train.max_seconds`` of its own. The preset's and the
    overrides' warm-up, rates and EMA are kept."""
    from genlab import registry
    from genlab.config import apply_overrides

    cfg = registry.build_run_config(model, data=data, preset=preset, overrides=list(sets))
    fields = {
        "progress": False,
        "sample_every": 0,
        "checkpoint_every": 0,
        "log_every": 0,
        "lr_schedule": "cosine",
        "steps": 10**9,
        "schedule_steps": 10**9,
        "max_seconds": 0.0,
    }  # the benchmark's budget, not a preset's
    for key, field in (("seed", "seed"), ("device", "device"), ("clock", "budget_clock")):
        if hasattr(args, key):
            fields[field] = getattr(args, key)
    return apply_overrides(cfg, {f"train.{k}": v for k, v in fields.items()})


def train_to_budget(
    args: argparse.Namespace,
    model: str,
    train_set,
    work: Path,
    *,
    data: str | None = None,
    preset: str | None = None,
    sets: Sequence[str] = (),
    first: int = 100,
    warm: int = 10,
):
    """Train ``model`` as :func:`budget_run_config` sets it up for ``args.minutes`` (of ``args.clock``)
    with :func:`fit_schedule_to_budget`; (the model in eval mode, with the EMA weights when
    ``train.ema_decay`` > 0, and facts: "steps", "minutes" (budget clock), "wall_minutes", "images", "config").
    No checkpoints are written (that would count as training time)."""
    from genlab import registry
    from genlab.train.trainer import Trainer

    cfg = budget_run_config(args, model, data=data, preset=preset, sets=sets)
    torch.manual_seed(args.seed)
    net = registry.entry(model).model_class(cfg.model)
    trainer = Trainer(net, train_set, cfg.train, work, cfg)
    trainer.save_checkpoint = lambda: None
    clock = clock_of(args)
    t0, c0 = time.perf_counter(), clock()
    steps = fit_schedule_to_budget(trainer, args.minutes * 60, first=first, warm=warm)
    facts = {
        "steps": steps,
        "minutes": (clock() - c0) / 60,
        "wall_minutes": (time.perf_counter() - t0) / 60,
        "images": steps * cfg.train.batch_size,
        "config": cfg,
    }
    if trainer.ema is not None:
        net.load_state_dict(trainer.ema.weights_like(net))
    return net.eval(), facts


def fit_until(trainer, seconds: float) -> None:
    """Train ``trainer`` until its run's training time reaches ``seconds``: sets
    ``train.max_seconds`` (counted over every fit of the run, as the Trainer counts
    it) and fits to :data:`UNTIL_BUDGET` steps. Calling it again with a larger
    ``seconds`` continues the same run: a run in stages, each given its share of one budget."""
    trainer.config = dataclasses.replace(trainer.config, max_seconds=float(seconds), steps=UNTIL_BUDGET)
    if getattr(trainer, "run_config", None) is not None:
        trainer.run_config = dataclasses.replace(trainer.run_config, train=trainer.config)
    trainer.fit()


def steps_for(seconds: float, seconds_per_step: float, minimum: int = 10) -> int:
    """How many steps of ``seconds_per_step`` fit in ``seconds`` (rounded down), at least ``minimum``."""
    if seconds_per_step <= 0:
        raise ValueError(f"seconds per step must be > 0, got {seconds_per_step}")
    return max(minimum, int(seconds / seconds_per_step))


def clock_of(what) -> Callable[[], float]:
    """The clock a budget is counted in: ``time.process_time`` (CPU seconds of this
    process, every thread) for ``"cpu"``, ``time.perf_counter`` for ``"wall"``.
    ``what`` is that name, parsed args with ``--clock``, or a TrainConfig
    (its ``budget_clock``); anything else (args without ``--clock``) is wall."""
    name = what if isinstance(what, str) else getattr(what, "clock", getattr(what, "budget_clock", "wall"))
    return time.process_time if name == "cpu" else time.perf_counter


def seconds_per_step(trainer, timed: int, warm: int = 5) -> float:
    """Seconds per iteration of ``trainer`` on this machine, now, in the clock of its
    budget (``train.budget_clock``): ``warm`` untimed iterations (allocations, first
    calls), then the mean of the next ``timed``.

    Use a throw-away trainer: it is trained by ``warm + timed`` iterations.
    """
    if timed < 1:
        raise ValueError(f"timed iterations must be >= 1, got {timed}")
    clock = clock_of(trainer.config)
    trainer.fit(trainer.step + warm)
    start = clock()
    trainer.fit(trainer.step + timed)
    return (clock() - start) / timed


def until(seconds: float, clock: Callable[[], float] = time.perf_counter) -> Iterator[int]:
    """Yield 0, 1, 2, ... until ``seconds`` have passed since the first yield
    (for loops that are not a genlab Trainer, e.g. a classifier trained for a minute)."""
    start, i = clock(), 0
    while clock() - start < seconds:
        yield i
        i += 1


def next_estimate(done: int, steps_per_second: float, seconds_left: float, fraction: float) -> tuple[int, int]:
    """One re-estimate of :func:`fit_schedule_to_budget`: (total steps, step of the next re-estimate).

    At ``done`` iterations, training at ``steps_per_second``, with ``seconds_left``
    of the budget remaining (negative: overspent), the run should end after
    ``done + steps_per_second * seconds_left`` steps (rounded down, at least
    ``done``); the next re-estimate comes at ``fraction`` of that total (at least ``done``).
    """
    total = max(done, int(done + steps_per_second * max(0.0, seconds_left)))
    return total, max(done, int(total * fraction))


def fit_schedule_to_budget(
    trainer,
    seconds: float,
    *,
    first: int,
    warm: int = 10,
    fractions: Sequence[float] = (0.1, 0.3, 0.6, 0.85, 1.0),
    log: Callable[[str], None] = print,
) -> int:
    """Train ``trainer`` for ``seconds`` (of its ``train.budget_clock``) with a schedule whose end
    moves with the budget.

    A cosine schedule needs its length in steps, the budget is in seconds. After
    ``warm`` iterations (not used for the rate: allocations, first calls) and
    ``first`` more, the throughput so far turns the remaining time into a total
    step count; ``train.steps`` and ``train.schedule_steps`` are stretched to it
    (the schedule up to then barely moves), and the estimate is made again at
    each of ``fractions`` of the total. Returns the number of steps trained.
    """
    from genlab.train.trainer import lr_factor

    def stretch(steps: int) -> None:
        trainer.config = dataclasses.replace(trainer.config, steps=steps, schedule_steps=steps)
        for sch in trainer.schedulers.values():
            sch.lr_lambdas = [lambda k, c=trainer.config: lr_factor(k, c)]

    clock = clock_of(trainer.config)
    t0 = clock()
    trainer.fit(warm)
    t_warm = clock()
    target = steps = warm + first
    for fraction in fractions:
        trainer.fit(target)
        now = clock()
        rate = (target - warm) / (now - t_warm)
        steps, nxt = next_estimate(target, rate, seconds - (now - t0), fraction)
        stretch(steps)
        log(
            f"{(now - t0) / 60:.1f} min, step {target}: "
            f"{rate * trainer.config.batch_size:.0f} images/s -> {steps} steps in all"
        )
        target = nxt
        if target >= steps:
            break
    trainer.fit(steps)
    return steps


# --------------------------------------------------------------------------- sample quality


def sample_quality(model, test, *, samples: int, seed: int = 0, out: Path | None = None, batch_size: int = 100) -> dict:
    """The sample-quality protocol every MNIST benchmark shares, so that their figures compare.

    ``samples`` images from ``model.sample`` (seeded, quantized to 8 bits, as
    ``genlab eval --samples``), judged in the features of genlab's shipped MNIST
    classifier against every image of ``test`` (a data set with ``.images``): FID,
    KID (+- std over subsets), precision/recall, density/coverage, and the digits
    among the samples by that classifier's argmax. The first 100 samples go to
    ``out/samples.png`` when ``out`` is given. Returns ``{"samples", "samples_per_s"
    (wall clock), "fid", "kid", ..., "shares" (10 fractions summing to 1), "digits_above_1pct",
    "confidence" (mean top softmax probability), "png"}``.
    """
    from genlab.metrics.features import get_feature_net
    from genlab.metrics.quality import generate_samples, quality_metrics, reference_features
    from genlab.viz.images import save_png

    net = get_feature_net("mnist")
    t = time.perf_counter()
    fake = generate_samples(model, samples, batch_size=batch_size, seed=seed)
    per_s = len(fake) / (time.perf_counter() - t)
    ref = reference_features(test, net, split="test", cache=False)
    result = dict(quality_metrics(ref["features"], net.features(fake).numpy(), seed=seed))
    probs = torch.softmax(net.logits(fake), 1)
    shares = torch.bincount(probs.argmax(1), minlength=10).double() / len(fake)
    png = None
    if out is not None:
        png = str(Path(out) / "samples.png")
        save_png(fake[:100], png, scale=2)
    result.update(
        samples=len(fake),
        reference=len(ref["features"]),
        samples_per_s=per_s,
        shares=shares.tolist(),
        digits_above_1pct=int((shares > 0.01).sum()),
        confidence=float(probs.max(1).values.mean()),
        png=png,
    )
    return result


def quality_line(q: dict) -> str:
    """One line of :func:`sample_quality`'s figures, for a script's output."""
    return (
        f"FID {q['fid']:.2f}, KID {q['kid']:.4f} +- {q['kid_std']:.4f}, precision {q['precision']:.3f}, recall "
        f"{q['recall']:.3f}, density {q['density']:.3f}, coverage {q['coverage']:.3f}; "
        f"{q['digits_above_1pct']}/10 digits above 1%, smallest share {100 * min(q['shares']):.1f}%, classifier "
        f"confidence {q['confidence']:.2f} ({q['samples']} samples vs {q['reference']} test images, shipped MNIST "
        f"features; {q['samples_per_s']:.1f} samples/s)"
    )


def write_json(path, data: dict) -> None:
    """``data`` as indented JSON at ``path`` (tensors and numpy numbers as plain numbers)."""
    import json

    Path(path).write_text(
        json.dumps(data, indent=1, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)) + "\n"
    )


# --------------------------------------------------------------------------- tables


def markdown_row(cells: Sequence[object]) -> str:
    """``| a | b |``; a ``|`` inside a cell is escaped so that it stays one cell."""
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table (header, separator, rows), one string without a final newline."""
    lines = [markdown_row(columns), "|" + "---|" * len(columns)]
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"a row of {len(row)} cells in a table of {len(columns)} columns: {row!r}")
        lines.append(markdown_row(row))
    return "\n".join(lines)


class Table:
    """A markdown table printed as it fills: the header before the first row, each row when it is added.

    ``finish(machine)`` ends it with a blank line and the machine line (a line
    straight after a table would be read as one more row). A title, when given,
    is printed as ``**title**`` above the header.
    """

    def __init__(self, columns: Sequence[str], *, title: str | None = None, stream: TextIO | None = None):
        self.columns = list(columns)
        self.title = title
        self.rows: list[list[object]] = []
        self.stream = stream

    def _print(self, text: str) -> None:
        print(text, file=self.stream if self.stream is not None else sys.stdout, flush=True)

    def add(self, *cells: object) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"a row of {len(cells)} cells in a table of {len(self.columns)} columns: {cells!r}")
        if not self.rows:
            self._print(("\n" if self.title is None else f"\n**{self.title}**\n\n") + markdown_table(self.columns, []))
        self.rows.append(list(cells))
        self._print(markdown_row(cells))

    def markdown(self) -> str:
        return markdown_table(self.columns, self.rows)

    def finish(self, machine: Machine | None = None, *notes: str) -> None:
        """A blank line, then each note and the machine line (when given)."""
        lines = list(notes) + ([machine.line()] if machine is not None else [])
        if lines:
            self._print("\n" + "\n".join(lines))
