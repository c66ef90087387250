"""Mutation testing of genlab's maths modules with mutmut (a dev extra: ``pip install -e .[mutation]``).

For each module, mutmut makes many one-token changes to its code (``+`` to ``-``, ``<`` to
``<=``, a constant to another, a call argument dropped, ...) and runs the fast tests that
execute the mutated function; a mutant that no test notices *survives*. This script runs one
module at a time in its own scratch copy of the checkout (``--work``), against a restricted
selection of fast tests, and prints per module the killed share and every surviving mutant
with its diff. Not part of CI: a module takes minutes to an hour on a small machine.

    python scripts/mutation.py                      # every module below
    python scripts/mutation.py distributions losses # some of them
    python scripts/mutation.py --list               # the modules and their tests
    python scripts/mutation.py ood --max-children 2 --work /tmp/genlab-mutmut

Statements that raise an error or a warning are not mutated (``NOT_MUTATED``): their
wording is not maths. Survivors that are equivalent mutants (no test can tell them apart from the original, e.g.
a changed default that every caller overrides) are listed with the reason in
``scripts/mutation_equivalent.txt`` (``<mutant name>: <reason>``, one a line); the report
marks them and counts them apart.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENT = Path(__file__).with_name("mutation_equivalent.txt")

#: module -> (files to mutate, relative to the checkout; the fast tests that exercise them)
MODULES: dict[str, tuple[list[str], list[str]]] = {
    "distributions": (["src/genlab/distributions.py"], ["tests/test_distributions.py"]),
    "losses": (["src/genlab/losses.py"], ["tests/test_losses.py"]),
    "metrics": (
        ["src/genlab/metrics/likelihood.py", "src/genlab/metrics/quality.py"],
        ["tests/test_metrics_likelihood.py", "tests/test_metrics_quality.py"],
    ),
    "ood": (["src/genlab/ood/scores.py", "src/genlab/ood/report.py"], ["tests/test_ood.py"]),
    "masked": (["src/genlab/nn/masked.py"], ["tests/test_pixelcnn.py", "tests/test_wavenet.py"]),
    "iaf": (["src/genlab/nn/iaf.py"], ["tests/test_iaf.py"]),
}
#: lines whose statements are not mutated: raising an error and warning (the wording of a
#: message is not maths; that every message names real options is tested in test_bad_input.py)
NOT_MUTATED = [r"^\\s*raise ", r"warnings\\.warn\\("]
#: mutmut's verdicts that count as killed
KILLED = ("killed", "caught by type check", "timeout")
#: tests left out of every selection: end-to-end CLI runs and the like (slow, and they test plumbing)
DESELECT = "not cli and not slow and not real_vae and not trainer"


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def prepare(module: str, work: Path) -> Path:
    """A scratch copy of the checkout whose pyproject.toml tells mutmut what to mutate and test."""
    files, tests = MODULES[module]
    dest = work / module
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    shutil.copytree(ROOT / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (dest / "tests").mkdir()
    for f in sorted((ROOT / "tests").glob("*.py")):
        if not f.name.startswith("test_") or f"tests/{f.name}" in tests:
            shutil.copy2(f, dest / "tests" / f.name)
    pyproject = (ROOT / "pyproject.toml").read_text()
    pyproject = re.sub(r"\n\[tool\.mutmut\].*?(?=\n\[|\Z)", "", pyproject, flags=re.S)
    pyproject += (
        "\n[tool.mutmut]\n"
        f'source_paths = ["src"]\n'
        f"only_mutate = {_toml_list(files)}\n"
        f"pytest_add_cli_args_test_selection = {_toml_list(tests + ['-k', DESELECT])}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]\n'
        'process_isolation = "forkserver"\n'
        f"do_not_mutate_patterns = {_toml_list(NOT_MUTATED)}\n"
        "use_git_change_detection = false\n"
    )
    (dest / "pyproject.toml").write_text(pyproject)
    return dest


def refresh_tests(module: str, dest: Path) -> None:
    """Copy the checkout's current tests into an earlier run's scratch copy, and drop mutmut's
    record of which test covers which function, so that it is collected again."""
    if not dest.is_dir():
        raise SystemExit(f"no earlier run of {module} in {dest}; run it without --rerun first")
    tests = MODULES[module][1]
    for f in sorted((ROOT / "tests").glob("*.py")):
        if not f.name.startswith("test_") or f"tests/{f.name}" in tests:
            shutil.copy2(f, dest / "tests" / f.name)
    (dest / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)


def results(dest: Path) -> dict[str, str]:
    """{mutant name: status} from ``mutmut results --all true``."""
    out = subprocess.run(
        [sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=dest, capture_output=True, text=True
    )
    found = {}
    for line in out.stdout.splitlines():
        m = re.match(r"\s*(\S+): (\S.*)$", line)
        if m:
            found[m.group(1)] = m.group(2).strip()
    return found


def equivalent() -> dict[str, str]:
    if not EQUIVALENT.is_file():
        return {}
    out = {}
    for line in EQUIVALENT.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, reason = line.partition(":")
            out[name.strip()] = reason.strip()
    return out


def report(module: str, dest: Path, show_diffs: bool = True) -> tuple[int, int, int]:
    """Print the module's killed share and its survivors; returns (killed, equivalent, total)."""
    status = results(dest)
    eq = equivalent()
    pending = sum(s == "not checked" for s in status.values())  # a run stopped before it reached them
    status = {k: s for k, s in status.items() if s != "not checked"}
    killed = sum(s in KILLED for s in status.values())
    survivors = {k: s for k, s in status.items() if s not in KILLED}
    n_eq = sum(k in eq for k in survivors)
    total = len(status)
    share = killed / total if total else float("nan")
    share_eq = killed / (total - n_eq) if total - n_eq else float("nan")
    print(
        f"\n## {module}: {killed}/{total} mutants killed ({100 * share:.1f}%), {n_eq} survivors listed as equivalent "
        f"({100 * share_eq:.1f}% of the non-equivalent ones killed)"
        + (f"; {pending} mutants not tested yet" if pending else "")
    )
    for name, s in sorted(survivors.items()):
        tag = f"equivalent: {eq[name]}" if name in eq else s
        print(f"- {name} ({tag})")
        if show_diffs and name not in eq:
            diff = subprocess.run(
                [sys.executable, "-m", "mutmut", "show", name], cwd=dest, capture_output=True, text=True
            ).stdout
            print(
                "\n".join(
                    "    " + line
                    for line in diff.splitlines()
                    if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
                )
            )
    return killed, n_eq, total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("modules", nargs="*", help=f"any of: {', '.join(MODULES)} (default: all)")
    p.add_argument(
        "--work", default=os.environ.get("TMPDIR", "/tmp") + "/genlab-mutmut", help="scratch folder for the copies"
    )
    p.add_argument("--max-children", type=int, default=1, help="mutants tested at once (default 1)")
    p.add_argument("--report-only", action="store_true", help="print the results of an earlier run without running")
    p.add_argument(
        "--rerun",
        action="store_true",
        help="test only the survivors of an earlier run again, against the checkout's current tests",
    )
    p.add_argument("--list", action="store_true", help="list the modules and their tests")
    args = p.parse_args(argv)
    if args.list:
        for name, (files, tests) in MODULES.items():
            print(f"{name:14s} {' '.join(files)}  <-  {' '.join(tests)}")
        return 0
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        p.error(f"unknown module(s) {unknown}; choose from {', '.join(MODULES)}")
    try:
        import mutmut  # noqa: F401
    except ImportError:
        p.error("mutmut is not installed: pip install -e .[mutation]")
    totals = [0, 0, 0]
    for module in args.modules or list(MODULES):
        dest = Path(args.work) / module
        if not args.report_only:
            names: list[str] = []
            if args.rerun:  # same mutants (the source is not copied again), new tests
                names = [k for k, v in results(dest).items() if v not in KILLED]
                refresh_tests(module, dest)
            else:
                dest = prepare(module, Path(args.work))
            env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(dest / "src")}
            if args.rerun and not names:
                continue
            run = subprocess.run(
                [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children), *names],
                cwd=dest,
                env=env,
            )
            if run.returncode != 0:
                print(f"mutmut failed on {module} (exit {run.returncode}); see {dest}", file=sys.stderr)
                return 1
        for i, v in enumerate(report(module, dest)):
            totals[i] += v
    k, e, t = totals
    if t:
        print(
            f"\n## all: {k}/{t} killed ({100 * k / t:.1f}%); {e} equivalent survivors "
            f"({100 * k / max(t - e, 1):.1f}% of the rest)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
