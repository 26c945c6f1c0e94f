"""ragindex: turn document corpora into a versioned, evaluated LanceDB retrieval index."""
