"""Execute the example notebooks headless and report each one's wall time; or check that they carry no outputs.

    python scripts/run_notebooks.py                         # every examples/*.ipynb, in name order
    python scripts/run_notebooks.py examples/02-*.ipynb     # some of them
    python scripts/run_notebooks.py --timeout 300           # seconds per cell (default 600)
    python scripts/run_notebooks.py --save /tmp/executed    # also write the executed copies there
    python scripts/run_notebooks.py --check-clean           # no execution: fail if a notebook holds outputs

Each notebook runs top to bottom with nbclient in a fresh ``python3`` kernel of the interpreter that
runs this script (``sys.executable``, whatever ``python3`` kernel spec Jupyter would find otherwise),
with ``examples/`` as its working directory and this process's environment (``GENLAB_SHARED_DATA``,
``OMP_NUM_THREADS``, ...). Nothing is written back into ``examples/``: the committed notebooks stay
without outputs. The exit status is 1 when a notebook fails (a cell raises or runs over the timeout) or,
with ``--check-clean``, holds outputs or execution counts; 0 otherwise. Needs the ``docs`` extra
(``pip install -e ".[docs]"``: nbclient, nbformat, ipykernel).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def notebooks(paths: list[str]) -> list[Path]:
    """The notebooks named on the command line, or every ``examples/*.ipynb`` in name order."""
    if not paths:
        return sorted(EXAMPLES.glob("*.ipynb"))
    return [Path(p).resolve() for p in paths]


def dirty_cells(path: Path) -> list[str]:
    """What makes a notebook not clean: one line per code cell with outputs or an execution count."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    problems = []
    for i, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {i}: {len(cell['outputs'])} output(s)")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {i}: execution_count {cell['execution_count']}")
    return problems


def check_clean(paths: list[Path]) -> int:
    bad = 0
    for path in paths:
        problems = dirty_cells(path)
        if problems:
            bad += 1
            print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: not clean")
            for line in problems:
                print(f"  {line}")
    if bad:
        print(f"{bad} notebook(s) hold outputs; clear them (Jupyter: Edit > Clear Outputs of All Cells, or")
        print("  jupyter nbconvert --clear-output --inplace examples/*.ipynb) before committing")
        return 1
    print(f"{len(paths)} notebook(s) clean")
    return 0


def private_kernel_spec(folder: Path) -> None:
    """Write a ``python3`` kernel spec that starts ``sys.executable`` under ``folder/kernels`` and put
    ``folder`` first on JUPYTER_PATH, so that the kernel is this interpreter's (its packages, its genlab)."""
    from ipykernel.kernelspec import write_kernel_spec

    write_kernel_spec(folder / "kernels" / "python3")  # argv: [sys.executable, "-m", "ipykernel_launcher", ...]
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(folder), os.environ.get("JUPYTER_PATH")]))


def run_one(path: Path, timeout: int, save: Path | None, sockets: Path) -> tuple[bool, float, str]:
    """Execute one notebook in memory: (ok, wall seconds, the error's text or ""). On POSIX the kernel
    talks over Unix sockets under ``sockets`` (no TCP port is opened), elsewhere over local TCP."""
    import nbformat
    from jupyter_client import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    nb = nbformat.read(path, as_version=4)
    if os.name == "posix":
        km = KernelManager(kernel_name="python3", transport="ipc", ip=str(sockets / path.stem))
    else:
        km = KernelManager(kernel_name="python3")
    client = NotebookClient(nb, km=km, timeout=timeout, resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    error = ""
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as e:
        error = str(e)
    except Exception as e:  # the kernel died or did not start
        error = f"{type(e).__name__}: {e}"
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    seconds = time.perf_counter() - start
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, save / path.name)
    return not error, seconds, error


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", help="notebooks to run (default: examples/*.ipynb)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds one cell may run (default 600)")
    ap.add_argument("--save", type=Path, metavar="DIR", help="write the executed notebooks into DIR")
    ap.add_argument("--check-clean", action="store_true", help="execute nothing: fail if a notebook holds outputs")
    args = ap.parse_args(argv)
    paths = notebooks(args.notebooks)
    if not paths:
        print(f"no notebooks in {EXAMPLES}", file=sys.stderr)
        return 1
    missing = [p for p in paths if not p.is_file()]
    if missing:
        print("no such notebook: " + ", ".join(map(str, missing)), file=sys.stderr)
        return 1
    if args.check_clean:
        return check_clean(paths)
    failed = []
    total = 0.0
    with tempfile.TemporaryDirectory(prefix="genlab-kernel-") as tmp:
        private_kernel_spec(Path(tmp))
        for path in paths:
            name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            print(f"{name}: running", flush=True)
            ok, seconds, error = run_one(path, args.timeout, args.save, Path(tmp))
            total += seconds
            print(f"{name}: {'ok' if ok else 'FAILED'} in {seconds:.1f} s", flush=True)
            if not ok:
                failed.append(name)
                print(error, flush=True)
    print(f"{len(paths) - len(failed)} of {len(paths)} notebook(s) ran without error in {total:.1f} s")
    if failed:
        print("failed: " + ", ".join(map(str, failed)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
