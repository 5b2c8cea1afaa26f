"""The geo package's one root exception."""

from __future__ import annotations


class ZoneFileError(ValueError):
    """A zones or jurisdictions file was rejected.

    ``problems`` lists every problem found, one line each, naming the feature
    index and id. Fix the file (a GIS tool's "check validity" helps) and load
    it again; a running flow keeps its previous zones meanwhile.
    """

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems
