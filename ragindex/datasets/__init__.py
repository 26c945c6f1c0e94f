"""Evaluated RAG datasets: question generators (qrels, heading, cloze, llm), row schema and publishing."""
