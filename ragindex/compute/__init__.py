"""Engines that run build steps past one process (Ray)."""
