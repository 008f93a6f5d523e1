"""Errors a user can see: each carries one sentence that names the file, row or field."""


class SegriskError(Exception):
    """Base class: the message is shown to the user as it is, without a traceback."""


class SpecError(SegriskError):
    """A dataset spec that does not parse or does not validate."""


class SourceError(SegriskError):
    """A source file that cannot be used at all (missing, empty, undecodable, lacking a column)."""


class BuildError(SegriskError):
    """A build that could not complete; the previous warehouse is left untouched."""


class WarehouseError(SegriskError):
    """A warehouse file that is missing, locked or not a Segrisk warehouse."""


class SettingError(SegriskError):
    """A ``SEGRISK_*`` setting whose value cannot be used; the sentence names it, its value and what it takes."""
