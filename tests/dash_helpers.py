"""Helpers for the tests of the dashboard's pages: read the warehouse, read a component tree, and
run a callback as if one of its inputs had just changed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl


def sql(db_path: Path, query: str, params: list | None = None) -> pl.DataFrame:
    """A query on the warehouse file itself, read-only: what the page should agree with."""
    with duckdb.connect(str(db_path), read_only=True) as con:
        return con.sql(query, params=params).pl()


def texts(component: object) -> list[str]:
    """Every string in a Dash component tree."""
    if isinstance(component, str):
        return [component]
    if isinstance(component, list | tuple):
        return [text for item in component for text in texts(item)]
    children = getattr(component, "children", None)
    if children is None:
        return []
    return texts(children if isinstance(children, list) else [children])


def text_of(component: object) -> str:
    """Every text in a Dash component tree, space-separated."""
    if component is None or isinstance(component, bool):
        return ""
    if isinstance(component, str | int | float):
        return str(component)
    if isinstance(component, list | tuple):
        return " ".join(text_of(c) for c in component)
    return text_of(getattr(component, "children", None))


def find(component: object, component_id: str) -> object | None:
    """The component with this id in a tree (None when absent)."""
    if isinstance(component, list | tuple):
        for child in component:
            if (found := find(child, component_id)) is not None:
                return found
        return None
    if not hasattr(component, "to_plotly_json"):
        return None
    if getattr(component, "id", None) == component_id:
        return component
    return find(getattr(component, "children", None), component_id)


@contextmanager
def triggered(component_id: str, prop: str, value: object) -> Iterator[None]:
    """Run a callback as if ``component_id.prop`` had just changed, so ``ctx.triggered_id`` works.

    Dash has no public way to set this outside a request; its callback context lives in a private
    context variable, used here and nowhere else."""
    from dash._callback_context import context_value
    from dash._utils import AttributeDict

    token = context_value.set(AttributeDict(triggered_inputs=[{"prop_id": f"{component_id}.{prop}", "value": value}]))
    try:
        yield
    finally:
        context_value.reset(token)
