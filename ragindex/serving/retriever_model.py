"""MLflow models-from-code: a retriever that opens its LanceDB table at a pinned tag and answers queries.

Input rows: {"query": str, "k": int (1..search.max_k, default 10), "mode": "dense"|"dense_exact"|"fts"|"hybrid"
(default hybrid), "per_doc": int (default search.per_doc; 0 = no cap), "group_by": "chunk"|"doc" (default chunk),
"groups": the caller's access groups, a list or "a,b" (default none: public chunks only)}. Every row is validated
before any search (ragindex/requests.py); bad rows raise one ValueError with a line per bad row.
Output: one list of ranked chunks (chunk_id, doc_id, heading_path, score, text, citation, ...) or documents per row.
Hybrid ranks with the fusion the build's evaluation chose (registered with the model).
"""

from __future__ import annotations

import mlflow
from mlflow.pyfunc import PythonModel


class RetrieverModel(PythonModel):
    def load_context(self, context) -> None:
        from ragindex.config import AnnConfig, EmbedderConfig, IndexConfig, SearchConfig
        from ragindex.embedding import configured_embedder
        from ragindex.evaluation.fusion import FusionChoice
        from ragindex.index_store import IndexStore
        from ragindex.search import Retriever
        from ragindex.storage import connect

        cfg = context.model_config
        index = IndexConfig(uri=cfg["uri"], table=cfg["table"], fts_title_boost=cfg["fts_title_boost"],
                            ann=AnnConfig(**cfg["ann"]))
        search = SearchConfig(**cfg["search"])
        fusion = FusionChoice.from_dict(cfg["fusion"]) if cfg.get("fusion") else None
        embedder = configured_embedder(EmbedderConfig(batch_size=cfg.get("batch_size", 64)), cfg["model"])
        if embedder.fingerprint.id != cfg["fingerprint"]:
            raise RuntimeError(f"model fingerprint {embedder.fingerprint.id} != indexed {cfg['fingerprint']}")
        store = IndexStore(connect(cfg["uri"]), index, cfg["table"])
        self.retriever = Retriever(store, embedder, search, version=cfg["tag"], log_queries=True, fusion=fusion)

    def predict(self, context, model_input, params=None):
        from ragindex.requests import parse_requests

        rows = model_input.to_dict("records") if hasattr(model_input, "to_dict") else list(model_input)
        out = []
        for request in parse_requests(rows, self.retriever.config.max_k):
            hits = self.retriever.search(request.query, request.mode, request.k, per_doc=request.per_doc,
                                         group_by=request.group_by, groups=request.groups)
            out.append([h.as_dict() for h in hits])
        return out


mlflow.models.set_model(RetrieverModel())
