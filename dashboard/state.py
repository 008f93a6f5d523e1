"""Edits made in the dashboard (persona names and strategies, alert acknowledgements).

They go to the application-state store beside the warehouse (SQLite in WAL mode), never into the
warehouse, which the dashboard only reads; the next model run copies them in for SQL users. Pages
overlay them on what the warehouse says, so an edit shows at once.
"""

from __future__ import annotations

from warehouse.app_state import MAX_ALERT_ID, MAX_ALERT_NOTE, AppState, StoreBusyError, state_path

from .data import WarehouseReader, register

register(
    persona_summary="SELECT segment_key, persona_name, strategy, description, archetype, manual_underwriting, "
    "customers, share FROM ml_latest_segment_summary ORDER BY segment_id",
    latest_alert_exists="SELECT count(*) FROM ml_latest_alerts WHERE alert_id = $alert_id",
)


class AcknowledgementRefused(ValueError):
    """An acknowledgement that was not stored; the message is the sentence to show."""


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
    try:
        edits = store(data).persona_labels()
    except StoreBusyError:
        edits = []  # another program holds the store: the run's own names, until it lets go
    for label in edits:
        if label.segment_key in names:
            names[label.segment_key] = label.persona_name or names[label.segment_key]
            strategies[label.segment_key] = label.strategy or strategies[label.segment_key]
    return names, strategies


def persona_names(data: WarehouseReader) -> dict[str, str]:
    """Persona key -> name as users see it now."""
    return persona_labels(data)[0]


def acknowledged_ids(data: WarehouseReader) -> list[str]:
    return sorted(store(data).acknowledged_ids())


def acknowledge(data: WarehouseReader, alert_id: str, *, user: str, note: str | None = None) -> None:
    """Store an acknowledgement of an alert of the latest warnings run; anything else (an id made up
    before its alert exists, an old run's alert, an id or note over the caps) is refused with
    AcknowledgementRefused and nothing is stored."""
    if not isinstance(alert_id, str) or not alert_id or len(alert_id) > MAX_ALERT_ID:
        raise AcknowledgementRefused(f"Not acknowledged: an alert id has 1 to {MAX_ALERT_ID} characters.")
    if note is not None and len(note) > MAX_ALERT_NOTE:
        raise AcknowledgementRefused(f"Not acknowledged: a note has at most {MAX_ALERT_NOTE:,} characters.")
    if not data.has("ml_latest_alerts") or not int(data.query("latest_alert_exists", alert_id=alert_id).item()):
        raise AcknowledgementRefused(
            f"Not acknowledged: {alert_id} is not an alert of the latest warnings run; reload the page."
        )
    store(data).acknowledge(alert_id, user=user, note=note)
