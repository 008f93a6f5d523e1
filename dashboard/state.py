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


def persona_names(data: WarehouseReader) -> dict[str, str]:
    """Persona key -> name as users see it now: the last run's name unless renamed since."""
    names = {}
    if data.has("ml_latest_segment_summary"):
        names = dict(data.query("persona_summary").select("segment_key", "persona_name").rows())
    for label in store(data).persona_labels():
        if label.persona_name and label.segment_key in names:
            names[label.segment_key] = label.persona_name
    return names


def persona_strategies(data: WarehouseReader) -> dict[str, str]:
    strategies = {}
    if data.has("ml_latest_segment_summary"):
        strategies = dict(data.query("persona_summary").select("segment_key", "strategy").rows())
    for label in store(data).persona_labels():
        if label.strategy and label.segment_key in strategies:
            strategies[label.segment_key] = label.strategy
    return strategies


def acknowledged_ids(data: WarehouseReader) -> list[str]:
    return sorted(store(data).acknowledged_ids())
