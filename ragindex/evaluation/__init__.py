"""Plain-Python retrieval evaluation: BEIR loading, trec_eval-compatible metrics, fusion, statistics."""
