"""Training speed of the default models on CPU: allocator and memory layout, and a shared machine.

Two tables, each cell measured in a fresh process (glibc's malloc settings and the
OpenMP wait policy are process-wide and fixed at start-up), with the models of
``genlab train MODEL`` at their registry defaults on mnist-5k (1x28x28, batch 128):

* ``--part options`` -- steps/s and CPU seconds per step of each model in
  ``--models`` with ``train.tune_malloc`` off, on, and on with the other memory layout
  (``model.channels_last`` flipped, for the models that have it: VAE, PixelVAE, PixelCNN),
  on ``--threads`` threads, alone;
* ``--part sharing`` -- steps/s beside 0, 1, 2, ... busy single-thread torch processes
  (``--busy``; each multiplies 256x256 matrices in a loop) for each thread setting in
  ``--modes``: ``1`` and ``2`` threads (``train.threads``), ``2p`` = 2 threads with
  ``OMP_WAIT_POLICY=PASSIVE``, ``auto`` = ``train.threads=0`` (chosen at start from
  the free cores) in the environment the ``genlab`` command sets up. "Fair share" is
  the speed this process would have with cores/(busy+1) of the machine, from the
  same model's alone figures (1 thread for one core, the faster of 1 or 2 threads for
  the whole machine); "neighbours" is the busy processes' speed during the cell as a
  percentage of one busy process alone.

    python benchmarks/cpu_speed.py --part options --threads 1 --models vae,pixelcnn,dcgan,ddpm
    python benchmarks/cpu_speed.py --part sharing --models vae,pixelcnn,dcgan --busy 0,1,2
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

HERE = Path(__file__).resolve().parent
BUSY = """
import os, sys, time, torch
torch.set_num_threads(1)
a, n, last, path, parent = torch.randn(256, 256), 0, 0.0, sys.argv[1], os.getppid()
while os.getppid() == parent:  # ends with the benchmark, however it ends
    for _ in range(10):
        a = torch.tanh(a @ a)
    n += 10
    now = time.perf_counter()
    if now - last > 0.05:
        with open(path + ".tmp", "w") as f:
            f.write(f"{n} {now}")
        os.replace(path + ".tmp", path)
        last = now
"""


def child_env(omp_passive: bool) -> dict:
    """The environment of one measured process: no inherited thread counts; the wait policy given."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
    }
    if omp_passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def measure(spec: dict) -> dict:
    """In this process: train ``spec['model']`` ``spec['warm']`` steps, then for ``spec['seconds']``
    of wall-clock time; steps/s, CPU s/step, the threads used and the load average at the start."""
    import torch

    from genlab import registry
    from genlab.train import Trainer

    load = harness.load_average()
    data = harness.load("mnist-5k", "train", argparse.Namespace(data_dir=spec.get("data_dir")))
    torch.manual_seed(0)
    layout = {} if spec["channels_last"] is None else {"channels_last": spec["channels_last"]}
    model = registry.build(spec["model"], image_shape=tuple(data.images.shape[1:]), **layout)
    cfg = harness.train_config(None, spec["model"], device="cpu", threads=spec["threads"], tune_malloc=spec["malloc"])
    with tempfile.TemporaryDirectory() as run:
        trainer = Trainer(model, data, cfg, run)
        trainer.fit(spec["warm"])
        print("START", flush=True)
        s0, w0, c0 = trainer.step, time.perf_counter(), time.process_time()
        harness.fit_until(trainer, trainer._elapsed + spec["seconds"])
        wall, cpu, steps = time.perf_counter() - w0, time.process_time() - c0, trainer.step - s0
    return {
        "steps_per_s": steps / wall,
        "cpu_per_step": cpu / steps,
        "threads": trainer.threads,
        "steps": steps,
        "load": load,
    }


def run_child(spec: dict, env: dict, on_start=lambda: None) -> dict:
    """:func:`measure` in a fresh ``python`` process; ``on_start()`` is called when its timed window opens."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=os.getcwd())
    result = None
    for line in proc.stdout:
        if line.startswith("START"):
            on_start()
        elif line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
    if proc.wait() != 0 or result is None:
        raise SystemExit(f"the measured process failed ({proc.returncode}): {' '.join(cmd)}")
    return result


class Busy:
    """``n`` busy single-thread torch processes, each reporting its iteration count to a file."""

    def __init__(self, n: int, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.paths = [folder / f"busy{i}" for i in range(n)]
        env = child_env(False)
        env["OMP_NUM_THREADS"] = "1"
        self.procs = [subprocess.Popen([sys.executable, "-c", BUSY, str(p)], env=env) for p in self.paths]
        deadline = time.time() + 60
        while not all(p.exists() for p in self.paths) and time.time() < deadline:
            time.sleep(0.1)

    def counts(self) -> list[tuple[int, float]]:
        out = []
        for p in self.paths:
            n, t = p.read_text().split()
            out.append((int(n), float(t)))
        return out

    def rates(self, a, b) -> list[float]:
        """Iterations/s of each process between two :meth:`counts`."""
        return [(nb - na) / max(1e-9, tb - ta) for (na, ta), (nb, tb) in zip(a, b)]

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait()


def fair_rate(alone: dict, cores: int, busy: int) -> float:
    """Steps/s this process would get with cores/(busy+1) of the machine, from its alone
    rates ``alone[1]`` (1 thread) and ``alone['best']`` (the whole machine)."""
    share = cores / (busy + 1)
    if share < 1:
        return alone[1] * share
    return alone[1] + (alone["best"] - alone[1]) * min(1.0, (share - 1) / max(1, cores - 1))


def part_options(a, machine):
    table = harness.Table(
        ["model", "threads", "setting", "steps/s", "CPU s/step", "speed-up", "load avg (1 min)"],
        title="allocator and memory layout, alone",
    )
    from genlab import registry

    for model in a.models.split(","):
        # the model's own layout, then the other one where the model has the setting (model.channels_last)
        arms = [("tune_malloc off", False, None), ("tune_malloc on", True, None)]
        field = registry.get(model)[0].__dataclass_fields__.get("channels_last")
        if field is not None:
            default = field.default
            arms.append((f"tune_malloc on + model.channels_last={str(not default).lower()}", True, not default))
        base = None
        for name, malloc, cl in arms:
            spec = dict(
                model=model,
                threads=a.threads or 1,
                malloc=malloc,
                channels_last=cl,
                warm=a.warm,
                seconds=a.seconds,
                data_dir=a.data_dir,
            )
            r = run_child(spec, child_env(False))
            base = base or r["steps_per_s"]
            table.add(
                model,
                r["threads"],
                name,
                f"{r['steps_per_s']:.2f}",
                f"{r['cpu_per_step']:.3f}",
                f"{r['steps_per_s'] / base:.2f}x",
                f"{r['load']:.2f}",
            )
    table.finish(machine, f"{a.warm} warm-up steps, then {a.seconds:g} s timed; each cell a fresh process")


def part_sharing(a, machine):
    from genlab.train.cpu import openmp_defaults, usable_cores

    cores = usable_cores()
    table = harness.Table(
        [
            "model",
            "busy procs",
            "threads setting",
            "threads used",
            "steps/s",
            "CPU s/step",
            "% of fair share",
            "neighbours (% of alone)",
            "load avg (1 min)",
        ],
        title=f"beside busy single-thread processes, {cores} cores",
    )
    modes = a.modes.split(",")
    alone: dict[str, dict] = {}
    neighbour_alone = None
    with tempfile.TemporaryDirectory() as folder:
        for busy in [int(b) for b in a.busy.split(",")]:
            procs = Busy(busy, Path(folder) / f"level{busy}")
            try:
                if busy:
                    time.sleep(1.0)
                    c0 = procs.counts()
                    time.sleep(2.0)
                    if neighbour_alone is None and busy == 1:
                        neighbour_alone = procs.rates(c0, procs.counts())[0]
                for model in a.models.split(","):
                    for mode in modes:
                        threads = 0 if mode == "auto" else int(mode.rstrip("p"))
                        spec = dict(
                            model=model,
                            threads=threads,
                            malloc=True,
                            channels_last=None,
                            warm=a.warm,
                            seconds=a.seconds,
                            data_dir=a.data_dir,
                        )
                        env = child_env(mode.endswith("p"))
                        if mode == "auto":
                            openmp_defaults(env)
                        marks = []
                        r = run_child(spec, env, on_start=lambda: marks.append(procs.counts()))
                        rates = procs.rates(marks[0], procs.counts()) if busy else []
                        if busy == 0:
                            alone.setdefault(model, {1: 0.0, "best": 0.0})
                            if r["threads"] == 1 and mode == "1":
                                alone[model][1] = r["steps_per_s"]
                            alone[model]["best"] = max(alone[model]["best"], r["steps_per_s"])
                        fair = fair_rate(alone[model], cores, busy) if alone.get(model, {}).get(1) else None
                        neighbours = (
                            "-"
                            if not rates or not neighbour_alone
                            else " / ".join(f"{100 * x / neighbour_alone:.0f}" for x in rates)
                        )
                        table.add(
                            model,
                            busy,
                            mode,
                            r["threads"],
                            f"{r['steps_per_s']:.2f}",
                            f"{r['cpu_per_step']:.3f}",
                            "-" if fair is None else f"{100 * r['steps_per_s'] / fair:.0f}%",
                            neighbours,
                            f"{r['load']:.2f}",
                        )
            finally:
                procs.stop()
    table.finish(
        machine,
        f"{a.warm} warm-up steps, then {a.seconds:g} s timed; each cell a fresh process; tune_malloc on; "
        f"one busy process alone: {neighbour_alone or 0:.1f} iterations/s",
    )


def build_parser():
    p = harness.parser(__doc__, data_dir=harness.default_data_dir(), threads=1)
    p.add_argument("--part", choices=("options", "sharing"), default="sharing")
    p.add_argument("--models", default="vae,pixelcnn,dcgan", help="registry models (default %(default)s)")
    p.add_argument("--busy", default="0,1,2", help="numbers of busy processes, 0 first (default %(default)s)")
    p.add_argument("--modes", default="1,2,2p,auto", help="thread settings of the sharing table (default %(default)s)")
    p.add_argument("--seconds", type=float, default=5.0, help="timed wall-clock seconds per cell (default %(default)s)")
    p.add_argument("--warm", type=int, default=2, help="untimed steps first (default %(default)s)")
    p.add_argument("--child", help=argparse.SUPPRESS)  # internal: one measured cell, as JSON
    return p


def main(argv=None):
    ap = build_parser()
    a = ap.parse_args(argv)
    if a.child:
        print("RESULT " + json.dumps(measure(json.loads(a.child))), flush=True)
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # (timeout): stop the busy processes on the way out
    machine = harness.Machine.describe()
    (part_options if a.part == "options" else part_sharing)(a, machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
