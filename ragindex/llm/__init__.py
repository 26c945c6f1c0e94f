"""An optional OpenAI-compatible LLM endpoint: a cached JSON chat client and grounded answers with citations."""
