"""Segrisk warehouse: load a bank's data through a dataset spec into one DuckDB file.

This package imports neither ``models`` nor ``dashboard``: the warehouse must stay
usable (and testable) without the model or UI layers.
"""

__version__ = "0.1.0"

#: Bumped whenever a warehouse table or column changes name or meaning.
SCHEMA_VERSION = 1
