"""The query log: every query a logging Retriever answers (UTC time, text, mode, table, model, vector).

One LanceDB table `query_log` under `DataLayout.query_log`, appended one row per query; query drift reads
windows of it by time. Full-text queries are logged without a vector (the search path never embeds them just
to log); readers embed them on demand with the same model (`QueryLog.window(..., embedder=)`). Logging never
breaks a search: a failure to write is a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from ragindex.lance_tables import quote, table_names
from ragindex.paths import DataLayout
from ragindex.storage import connect

TABLE = "query_log"
SCHEMA = pa.schema([
    ("time", pa.timestamp("us", tz="UTC")),
    ("text", pa.string()),
    ("mode", pa.string()),
    ("table_name", pa.string()),
    ("version", pa.string()),
    ("fingerprint", pa.string()),
    ("vector", pa.list_(pa.float32())),  # null for fts queries; any width (one per model)
])
COMPACT_EVERY = 500  # versions between compactions of the one-row appends


def _literal(moment: datetime) -> str:
    """A timestamp literal LanceDB's SQL filter compares with the UTC `time` column."""
    return "timestamp " + quote(moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"))


@dataclass
class QueryWindow:
    """The queries of one time window: texts, times and (after embedding the missing ones) vectors."""

    start: datetime
    end: datetime
    texts: list[str] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)
    modes: list[str] = field(default_factory=list)
    vectors: np.ndarray | None = None  # (n, d) float32 once complete; None when some rows lack a vector
    fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def label(self) -> str:
        return f"queries {self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC"


class QueryLog:
    """Append queries; read them back by table, model fingerprint and time window."""

    def __init__(self, uri: str | Path | None = None):
        self.uri = str(uri or DataLayout.current().query_log)
        self.db = connect(self.uri)

    def _table(self, create: bool):
        if TABLE in table_names(self.db):
            return self.db.open_table(TABLE)
        return self.db.create_table(TABLE, schema=SCHEMA, exist_ok=True) if create else None

    def append(self, texts: Sequence[str], mode: str, table: str, fingerprint: str,
               vectors: Sequence[Sequence[float] | None] | None = None, version: str | int | None = None,
               time: datetime | Sequence[datetime] | None = None) -> int:
        """Append queries (one commit); `time` defaults to now (UTC), a single time or one per query."""
        n = len(texts)
        if not n:
            return 0
        times = list(time) if isinstance(time, Sequence) else [time or datetime.now(UTC)] * n
        vecs = list(vectors) if vectors is not None else [None] * n
        if len(times) != n or len(vecs) != n:
            raise ValueError("append: texts, times and vectors must have the same length")
        rows = [{"time": t.astimezone(UTC), "text": str(q), "mode": mode, "table_name": table,
                 "version": None if version is None else str(version), "fingerprint": fingerprint,
                 "vector": None if v is None else np.asarray(v, dtype=np.float32).tolist()}
                for q, t, v in zip(texts, times, vecs, strict=True)]
        target = self._table(create=True)
        target.add(pa.Table.from_pylist(rows, SCHEMA))
        if target.version % COMPACT_EVERY == 0:
            target.optimize()
        return n

    def window(self, table: str, fingerprint: str | None, start: datetime, end: datetime,
               embedder=None, max_rows: int | None = None, seed: int = 0) -> QueryWindow:
        """Queries of `table` logged in [start, end) by the model `fingerprint` (None: any model), oldest first;
        at most `max_rows` of them (a seeded sample, taken before any embedding).

        With `embedder` (whose fingerprint must match), queries logged without a vector are embedded, so
        `vectors` covers every row; without it, `vectors` is None when any row lacks one.
        """
        result = QueryWindow(start.astimezone(UTC), end.astimezone(UTC), fingerprint=fingerprint)
        source = self._table(create=False)
        if source is None:
            return result
        terms = [f"table_name = {quote(table)}", f"time >= {_literal(start)}", f"time < {_literal(end)}"]
        if fingerprint:
            terms.append(f"fingerprint = {quote(fingerprint)}")
        rows = (source.search().where(" AND ".join(terms))
                .select(["time", "text", "mode", "vector"]).limit(max(source.count_rows(), 1)).to_arrow())
        rows = rows.sort_by([("time", "ascending"), ("text", "ascending")]).to_pylist()
        if max_rows is not None and len(rows) > max_rows:
            keep = np.sort(np.random.default_rng(seed).choice(len(rows), size=max_rows, replace=False))
            rows = [rows[i] for i in keep]
        result.texts = [r["text"] for r in rows]
        result.times = [r["time"] for r in rows]
        result.modes = [r["mode"] for r in rows]
        vectors = [r["vector"] for r in rows]
        missing = [i for i, v in enumerate(vectors) if v is None]
        if missing and embedder is not None:
            if fingerprint and embedder.fingerprint.id != fingerprint:
                raise ValueError(f"embedder {embedder.fingerprint.id} cannot fill vectors of model {fingerprint}")
            filled = embedder.embed([result.texts[i] for i in missing])
            for i, v in zip(missing, filled, strict=True):
                vectors[i] = v
            missing = []
        if rows and not missing:
            widths = {len(v) for v in vectors}
            if len(widths) > 1:
                raise ValueError(f"query vectors of several widths {sorted(widths)}: pass a fingerprint")
            result.vectors = np.asarray(vectors, dtype=np.float32)
        elif not rows:
            result.vectors = np.zeros((0, 0), dtype=np.float32)
        return result

    def windows(self, table: str, fingerprint: str | None, hours: float, now: datetime | None = None,
                embedder=None, max_rows: int | None = None, seed: int = 0) -> tuple[QueryWindow, QueryWindow]:
        """(the last `hours`, the `hours` before them), ending at now."""
        end = (now or datetime.now(UTC)).astimezone(UTC)
        width = timedelta(hours=hours)
        return (self.window(table, fingerprint, end - width, end, embedder, max_rows, seed),
                self.window(table, fingerprint, end - 2 * width, end - width, embedder, max_rows, seed))

    def latest_time(self, table: str) -> datetime | None:
        """When the newest query against a table was logged (None when none was)."""
        log = self._table(create=False)
        if log is None:
            return None
        rows = log.search().where(f"table_name = {quote(table)}").select(["time"]).limit(max(log.count_rows(), 1))
        times = rows.to_arrow().column("time")
        return max(times.to_pylist()) if len(times) else None

    def count(self) -> int:
        source = self._table(create=False)
        return source.count_rows() if source is not None else 0


def log_query(text: str, mode: str, table: str, fingerprint: str, vector=None,
              version: str | int | None = None) -> None:
    """Append one query to the default log; a failure is a warning, never an error of the search."""
    try:
        QueryLog().append([text], mode, table, fingerprint, [vector], version)
    except Exception as error:  # noqa: BLE001 - logging must not break serving
        warnings.warn(f"query not logged: {error}", RuntimeWarning, stacklevel=2)
