"""The READMEs stay true: their Python examples run, and their commands name real
subcommands, flags, config fields, data sets and benchmark flags.

Python examples run as written, in a scratch folder, with two substitutions that
keep them fast: every ``steps=N`` becomes ``steps=2`` and every ``iw_samples=N``
becomes ``iw_samples=2``. The runs they load (``genlab.load("runs/NAME")``) are
written first as untrained default models of the model the name starts with
(speed and shapes do not depend on the weights). Examples that read
``../shared/data`` run where that folder exists and are skipped elsewhere.

Commands are parsed, never run: ``genlab ...`` by genlab's own argument parser,
``genlab train`` also through ``registry.build_run_config`` and the model's validation,
``python benchmarks/NAME.py ...`` by that script's parser.
"""

from __future__ import annotations

import functools
import importlib
import re
import shlex
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SHARED_DATA
from genlab import cli, registry
from genlab.data import DATASETS

READMES = [ROOT / "README.md", ROOT / "benchmarks" / "README.md"]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(path: Path, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(path.read_text()) if lang == language]


def commands(text: str) -> list[list[str]]:
    """Shell commands of a bash block: continuation lines joined, comments dropped, split at ``&&``."""
    out = []
    for line in text.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            out.append(words[:cut])
            words = words[cut + 1 :]
    return out


def all_commands() -> list[tuple[str, list[str]]]:
    return [
        (f"{path.relative_to(ROOT)}: {' '.join(argv)}", argv)
        for path in READMES
        for body in blocks(path, "bash")
        for argv in commands(body)
    ]


# --------------------------------------------------------------------------- commands


def check_data_name(name: str) -> None:
    """A ``--data`` value: a named data set, a path form (latent:<run> included), or unpaired:<A>,<B> of named
    domains (+transform)."""
    if name.startswith(("folder:", "npz:", "npy:", "wav:", "latent:")):
        return
    domains = name[len("unpaired:") :].split(",") if name.startswith("unpaired:") else [name]
    for domain in domains:
        if domain.startswith("seed="):
            continue
        base = domain.split("+")[0]
        assert base in DATASETS, f"unknown data set {base!r} in {name!r}"


def check_genlab(argv: list[str]) -> None:
    """Parse a genlab command; for ``train``, build its run config as the CLI does and the model it describes."""
    try:
        args = cli.build_parser().parse_args(argv)
    except SystemExit:
        raise AssertionError(f"genlab rejects: {' '.join(argv)}") from None
    if getattr(args, "data", None):
        check_data_name(args.data)
    if args.command != "train":
        return
    cfg = registry.build_run_config(args.model, data=args.data, preset=args.preset, overrides=args.set or [])
    if getattr(cfg.model, "autoencoder", None) in written_runs():
        return  # a prior over a run that an earlier command of the READMEs trains: loadable once that has run
    registry.build(args.model, cfg.model)  # the model's own validation of the values


@functools.cache
def written_runs() -> set[str]:
    """The run folders that the READMEs' ``genlab train ... --out DIR`` commands write."""
    return {
        argv[argv.index("--out") + 1]
        for _, argv in all_commands()
        if argv[:2] == ["genlab", "train"] and "--out" in argv
    }


def check_script(argv: list[str]) -> None:
    """``python benchmarks/NAME.py ARGS``: the script exists and its parser takes ARGS."""
    script = ROOT / argv[1]
    assert script.is_file(), f"no such script: {argv[1]}"
    if script.parent.name != "benchmarks":
        return
    sys.path.insert(0, str(script.parent))
    try:
        module = importlib.import_module(script.stem)
    finally:
        sys.path.remove(str(script.parent))
    try:
        module.build_parser().parse_args(argv[2:])
    except SystemExit:
        raise AssertionError(f"{argv[1]} rejects: {' '.join(argv[2:])}") from None


def check_command(argv: list[str]) -> None:
    if argv[0] == "genlab":
        check_genlab(argv[1:])
    elif argv[:2] == ["python", "-m"]:
        importlib.import_module(argv[2])
    elif argv[0] == "python":
        check_script(argv)
    elif argv[0] == "mkdocs":  # the site's build (the docs extra); CI runs it
        assert (ROOT / "mkdocs.yml").is_file() and argv[1] in ("build", "serve"), " ".join(argv)
    elif argv[0] != "pip":
        raise AssertionError(f"a command this test does not know how to check: {' '.join(argv)}")


def test_the_readmes_have_commands_to_check():
    found = all_commands()
    assert sum(argv[0] == "genlab" for _, argv in found) >= 30
    assert {argv[1] for _, argv in found if argv[0] == "python" and argv[1].startswith("benchmarks/")} >= {
        f"benchmarks/{p.name}" for p in (ROOT / "benchmarks").glob("*.py") if p.name != "harness.py"
    }


@pytest.mark.parametrize("where,argv", all_commands(), ids=[where for where, _ in all_commands()])
def test_readme_command_is_real(where, argv):
    check_command(argv)


@pytest.mark.parametrize(
    "bad",
    [
        "genlab train vae --set model.no_such_field=1",
        "genlab train vae --set model.likelihood=no-such-likelihood",
        "genlab train no-such-model",
        "genlab sample runs/x --no-such-flag",
        "genlab train vae --data no-such-data",
        "genlab train latent --data mnist --set model.autoencoder=runs/no-such-run",
        "python benchmarks/vae_mnist.py --no-such-flag",
        "python benchmarks/no_such_script.py",
    ],
)
def test_the_command_check_rejects_what_is_not_there(bad):
    with pytest.raises(Exception):
        check_command(shlex.split(bad))


# --------------------------------------------------------------------------- Python examples

RUN = re.compile(r"""genlab\.load\(["'](runs/[^"']+)["']\)""")


def model_of(run_name: str) -> str:
    """The registered model a run's folder name starts with (the longest match)."""
    names = [n for n in registry.MODELS if run_name == n or run_name.startswith(n + "-")]
    assert names, f"no registered model for a run named {run_name!r}"
    return max(names, key=len)


def python_examples() -> list[tuple[str, str]]:
    return [
        (f"{path.relative_to(ROOT)} #{i}", body) for path in READMES for i, body in enumerate(blocks(path, "python"))
    ]


def test_the_readme_has_python_examples():
    assert len(python_examples()) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("where,code", python_examples(), ids=[where for where, _ in python_examples()])
def test_readme_python_example_runs(where, code, tmp_path, monkeypatch):
    if "../shared/data" in code:
        if SHARED_DATA is None:
            pytest.skip("the example reads ../shared/data, which is not here")
        (tmp_path / "shared").mkdir()
        (tmp_path / "shared" / "data").symlink_to(SHARED_DATA)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for run in sorted(set(RUN.findall(code))):
        registry.build(model_of(Path(run).name)).save(work / run)
    small = re.sub(r"\bsteps=\d+", "steps=2", re.sub(r"\biw_samples=\d+", "iw_samples=2", code))
    exec(compile(small, where, "exec"), {"__name__": "__readme__"})
