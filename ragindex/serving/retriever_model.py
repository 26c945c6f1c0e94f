"""MLflow models-from-code: a retriever that opens its LanceDB table at a pinned tag and answers queries.

Input rows: {"query": str, "k": int (default 10), "mode": "dense"|"dense_exact"|"fts"|"hybrid" (default hybrid),
"per_doc": int (default search.per_doc; 0 = no cap), "group_by": "chunk"|"doc" (default chunk)}.
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
        rows = model_input.to_dict("records") if hasattr(model_input, "to_dict") else list(model_input)
        out = []
        for row in rows:
            k = int(row.get("k") or 10)
            per_doc = row.get("per_doc")
            hits = self.retriever.search(str(row["query"]), row.get("mode") or "hybrid", k,
                                         per_doc=None if per_doc is None else int(per_doc),
                                         group_by=row.get("group_by") or "chunk")
            out.append([h.as_dict() for h in hits])
        return out


mlflow.models.set_model(RetrieverModel())
