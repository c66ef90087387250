"""Presets: named config values that belong together, and what they share.

A :class:`Preset` is a set of ``"section.field" -> value`` pairs with the place they
come from. Each model's presets live in its own module, beside its config class
(``PRESETS`` in ``genlab/models/<name>.py``, with its ``TRAIN_DEFAULTS`` and, where it
is not genlab's, its ``DEFAULT_DATA``); the registry (:mod:`genlab.registry`) reads them
from there. ``genlab train MODEL --preset NAME`` applies one, ``genlab models MODEL``
lists them with their sources and published results (:func:`describe`). This module
holds only the classes and the fragments several models' presets share
(:data:`MNIST_BINARY`, :func:`budget`, :data:`AND_BUDGET`); it imports no model.

Names follow one convention. ``paper`` (and ``paper-<variant>`` where the paper reports
a second setting) is the architecture and schedule of the paper as far as genlab's
model expresses it. Every source text says which table or section it follows and what
the paper uses that genlab does not have; nothing is approximated without saying so. A
preset that names ``data.name`` trains on the paper's data set unless the user names
another one (``--data``). :class:`Published` results sit next to the preset they belong
to, so ``benchmarks/reproduce.py`` prints them beside its own. These presets have been
built and counted on a CPU; none has been trained to the end of its schedule, and none
has run on a GPU. ``mnist-10min...`` presets are sized for 10 CPU-minutes on binarised
MNIST by a benchmark, whose command and result their source quotes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class Published:
    """A result printed in a paper: ``metric`` ("test NLL nats", "bits/dim", "inception
    score", ...), its ``value``, the ``source`` (paper, table, row) and a ``note`` on how
    comparable genlab's own measurement is (data, estimator, feature network)."""

    metric: str
    value: float
    source: str
    note: str = ""


@dataclass(frozen=True)
class Preset:
    """Config values that belong together, e.g. the settings of a paper or of a benchmark.

    ``values``: ``"section.field" -> value`` (e.g. ``{"train.lr": 1e-3}``); ``source``: where
    they come from (a paper's section or table, a benchmark script and its result);
    ``data``: data set names the preset is applied to automatically (before a preset the
    user names and before the user's overrides); ``published``: the paper's results for
    this setting.
    """

    values: Mapping[str, Any]
    source: str
    data: tuple[str, ...] = ()
    published: tuple[Published, ...] = ()


def describe(presets: Mapping[str, Preset]) -> str:
    """Presets as text, one block each: name, source, values, published results."""
    blocks = []
    for name, p in presets.items():
        lines = [
            name + (f" (applied with --data {', '.join(p.data)})" if p.data else ""),
            f"  source: {p.source}",
            "  values: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in p.values.items()),
        ]
        lines += [
            f"  published: {r.metric} {r.value:g} ({r.source}{'; ' + r.note if r.note else ''})" for r in p.published
        ]
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


# The latent-variable models sized for 10 CPU-minutes on binarised MNIST (issue #12, part 2): fully
# connected encoder and decoder, whose cheap decoder also makes the IWAE k = 1000 evaluation affordable.
def budget(steps: int) -> dict:
    """A cosine schedule of ``steps`` (what 10 CPU-minutes gave on the benchmark's host) capped at 10 CPU-minutes."""
    return {
        "train.steps": steps,
        "train.lr_schedule": "cosine",
        "train.schedule_steps": steps,
        "train.max_seconds": 600.0,
        "train.budget_clock": "cpu",
    }


#: Binarised MNIST: the data, its image shape and the Bernoulli likelihood.
MNIST_BINARY = {"data.name": "mnist", "model.image_shape": (1, 28, 28), "model.likelihood": "bernoulli"}
#: The end of a :func:`budget` preset's source text.
AND_BUDGET = (
    "The benchmark fits the cosine schedule to the budget while it runs; this preset's schedule is the length it "
    "reached there, capped at 10 CPU-minutes (train.max_seconds, train.budget_clock=cpu)."
)
