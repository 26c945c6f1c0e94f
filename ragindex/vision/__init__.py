"""Pixel vectors for a corpus's images with a local CLIP-family model: embedder, image table, cross-modal search."""
