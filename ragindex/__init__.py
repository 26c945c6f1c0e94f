"""ragindex: turn document corpora into a versioned, evaluated LanceDB retrieval index."""

from ragindex.heap import single_arena

single_arena()  # before any library starts its threads (ragindex/heap.py says why)
