"""Edits made in the dashboard (persona names and strategies, alert acknowledgements).

They go to the application-state store beside the warehouse (SQLite in WAL mode), never into the
warehouse, which the dashboard only reads; the next model run copies them in for SQL users. Pages
overlay them on what the warehouse says, so an edit shows at once.
"""

from __future__ import annotations

from warehouse.app_state import AppState, state_path

from .data import WarehouseReader, register

register(
    persona_summary="SELECT segment_key, persona_name, strategy, description, archetype, manual_underwriting, "
    "customers, share FROM ml_latest_segment_summary ORDER BY segment_id",
)


def store(data: WarehouseReader) -> AppState:
    return AppState(state_path(data.path))


def persona_labels(data: WarehouseReader) -> tuple[dict[str, str], dict[str, str]]:
    """(names, strategies) by persona key as users see them now: the last run's, unless edited since."""
    names: dict[str, str] = {}
    strategies: dict[str, str] = {}
    if data.has("ml_latest_segment_summary"):
        for key, name, strategy in (
            data.query("persona_summary").select("segment_key", "persona_name", "strategy").rows()
        ):
            names[key], strategies[key] = name, strategy
    for label in store(data).persona_labels():
        if label.segment_key in names:
            names[label.segment_key] = label.persona_name or names[label.segment_key]
            strategies[label.segment_key] = label.strategy or strategies[label.segment_key]
    return names, strategies


def persona_names(data: WarehouseReader) -> dict[str, str]:
    """Persona key -> name as users see it now."""
    return persona_labels(data)[0]


def acknowledged_ids(data: WarehouseReader) -> list[str]:
    return sorted(store(data).acknowledged_ids())
