"""Data-quality asset checks (Great Expectations 1.x) guarding what is published."""
