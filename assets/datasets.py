"""Group datasets assets."""
