"""Small cells: what a viewer, who sees aggregates only, may not read off a figure.

A figure about fewer than ``SEGRISK_MIN_CELL_SIZE`` customers (default 5) is as good as their rows:
a viewer who filters down to one customer would read that customer's default outcome and PD off the
headline tiles. As statistical agencies do, such figures are withheld from roles without customer-level
access (viewers); analysts and admins see the rows anyway, so nothing changes for them.

Two checks, each in one place:

- the population: ``filters.params`` calls ``check_population`` for every filtered query, so every page,
  chart and report under filters that match fewer customers than the minimum, or that differ by fewer
  from the same filters with one value or one filter dropped, raises ``SmallPopulation``, which the pages
  show as their one sentence instead of figures;
- the groups: ``suppress`` nulls the measures of each group (persona, grade, segment, rule...) with
  fewer customers than the minimum in a frame about to be shown, and of the next smallest group too
  when only one would go (secondary suppression), so a hidden group cannot be worked out as the total
  less the groups shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl
from dash import html
from flask import has_request_context

from warehouse import settings
from warehouse.errors import SegriskError

from . import auth

#: The setting, its default and what it means (``warehouse.settings``, documented in the README).
SETTING = settings.MIN_CELL_SIZE.name
DEFAULT_MIN_CELL_SIZE = settings.MIN_CELL_SIZE.default
HELP = settings.MIN_CELL_SIZE.help


class DisclosureError(SegriskError):
    """A bad ``SEGRISK_MIN_CELL_SIZE``."""


class SmallPopulation(SegriskError):
    """The global filters match fewer customers than a viewer may see figures about."""


def min_cell_size(environ: Mapping[str, str] | None = None) -> int:
    """``SEGRISK_MIN_CELL_SIZE``: a whole number of at least 1 (1 turns suppression off); unset or
    empty gives the default; any other value is refused with a sentence naming the setting."""
    return settings.MIN_CELL_SIZE.read(environ, error=DisclosureError)


def restricted() -> bool:
    """Whether the user of this request sees aggregates only (viewers): the one role small cells are
    hidden from. Outside a request (the CLI, warming the cache) nobody is looking."""
    return has_request_context() and not auth.user_can("customer_level")


def population_sentence(minimum: int) -> str:
    return (
        f"These filters match fewer than {minimum} customers; viewers see groups of at least {minimum} "
        "customers, so figures are hidden. Widen the filters."
    )


def group_note(minimum: int) -> str:
    return f"Groups under {minimum} customers are hidden (–) from viewers."


def check_population(bound: Mapping[str, Sequence[str]]) -> None:
    """Raise ``SmallPopulation`` when the user sees aggregates only and the filters bound in ``bound``
    (``filters.params``) match fewer customers than the minimum, or differ from a wider choice by fewer:
    dropping one chosen value, or one whole filter, must take away no customer or at least the minimum,
    else the two views' difference is a small group (Region North and South less Region North is the
    South). Unfiltered, nothing is checked."""
    if not any(bound.values()) or not restricted():
        return
    minimum = min_cell_size()
    if minimum <= 1:
        return
    from .data import reader
    from .filters import CUBE, FILTERS

    data = reader()
    name = "filtered_count" if data.has(CUBE) else "filtered_profile_count"

    def count(values: Mapping[str, Sequence[str]]) -> int:
        return int(data.query(name, **values).item() or 0)

    customers = count(bound)
    if customers < minimum:
        raise SmallPopulation(population_sentence(minimum))
    for f in FILTERS:
        chosen = list(bound.get(f.param) or [])
        if not chosen:
            continue
        # The whole filter dropped (every value of it), then each chosen value dropped in turn.
        wider = [count({**bound, f.param: []})]
        if len(chosen) > 1:
            wider += [count({**bound, f.param: [v for v in chosen if v != value]}) for value in chosen]
        if any(0 < abs(other - customers) < minimum for other in wider):
            raise SmallPopulation(difference_sentence(f.label, minimum))


def difference_sentence(label: str, minimum: int) -> str:
    return (
        f"These filters differ from a wider choice of {label} by fewer than {minimum} customers; viewers see "
        f"groups of at least {minimum} customers, so figures are hidden. Choose whole groups."
    )


def suppress(
    frame: pl.DataFrame,
    measures: Sequence[str],
    count: str = "customers",
    *,
    secondary: bool = True,
    flag: str | None = None,
) -> tuple[pl.DataFrame, int]:
    """``frame`` (one row per group, ``count`` customers each) with the ``measures`` of its small groups
    set to null when the user sees aggregates only, and how many groups were hidden (0 for analysts).

    ``secondary``: when exactly one group would be hidden, the next smallest goes too, so the groups
    shown and the total cannot give the hidden one away; leave it on where the groups split a total
    that is shown. ``flag``: the name of a boolean column added to say which groups were hidden."""
    if flag is not None:
        frame = frame.with_columns(pl.lit(False).alias(flag))
    if frame.height == 0 or not restricted():
        return frame, 0
    minimum = min_cell_size()
    sizes = frame.get_column(count).fill_null(0).cast(pl.Int64).to_list()
    small = [size < minimum for size in sizes]
    if secondary and sum(small) == 1 and len(sizes) > 1:
        # The smallest group still shown goes too (the first of that size).
        position = min((i for i, hidden in enumerate(small) if not hidden), key=lambda i: sizes[i])
        small[position] = True
    hidden = sum(small)
    if not hidden:
        return frame, 0
    mask = pl.Series("small", small)
    present = [m for m in measures if m in frame.columns]
    hide = [pl.when(mask).then(None).otherwise(pl.col(m)).alias(m) for m in present if m != flag]
    if flag:
        hide.append(mask.alias(flag))
    return frame.with_columns(hide), hidden


def note(hidden: int) -> html.P | None:
    """The sentence under a chart or table that hid ``hidden`` groups (None when it hid none)."""
    if not hidden:
        return None
    return html.P(group_note(min_cell_size()), className="small text-muted disclosure-note")
