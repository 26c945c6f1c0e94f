"""Build tags: the name every build gives the table version it committed, formatted and parsed here only."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

_PATTERN = re.compile(r"^(?P<source>.+)-(?P<stamp>\d{8}T\d{6})-v(?P<version>\d+)$")
_STAMP = "%Y%m%dT%H%M%S"


@dataclass(frozen=True)
class BuildTag:
    """`<source>-<UTC time>-v<version>`: which source a build committed, when, and the table version."""

    source: str
    time: datetime
    version: int

    @classmethod
    def new(cls, source: str, version: int) -> BuildTag:
        return cls(source, datetime.now(UTC).replace(microsecond=0), version)

    @classmethod
    def parse(cls, text: str) -> BuildTag | None:
        """The tag's parts, or None for a name that is not a build tag."""
        match = _PATTERN.match(text)
        if not match:
            return None
        when = datetime.strptime(match["stamp"], _STAMP).replace(tzinfo=UTC)
        return cls(match["source"], when, int(match["version"]))

    def __str__(self) -> str:
        return f"{self.source}-{self.time.strftime(_STAMP)}-v{self.version}"
