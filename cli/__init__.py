"""The `ragindex` command line: builds through the Dagster pipelines (runs show in the UI), search, answers."""
