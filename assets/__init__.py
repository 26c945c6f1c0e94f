"""Software-defined assets: what is built and from what; the how lives in `ragindex`."""
