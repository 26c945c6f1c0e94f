"""ragindex: turn document corpora into a versioned, evaluated LanceDB retrieval index."""

from ragindex.heap import single_heap

single_heap()  # before any library starts its threads (ragindex/heap.py says why)
