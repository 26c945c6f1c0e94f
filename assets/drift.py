"""Group drift assets."""
