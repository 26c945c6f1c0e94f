"""A local CLIP-family model (CLIPModel or SiglipModel): the image tower embeds pixels, the text tower queries."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from ragindex.errors import ConfigError

ARCHITECTURES = ("CLIPModel", "SiglipModel")


@dataclass(frozen=True)
class ImageFingerprint:
    """What made an image vector: the model folder's name, architecture, weights hash, input size, dimension."""

    name: str
    architecture: str
    weights_sha256: str
    image_size: int
    max_length: int  # text tower: query tokens kept
    dimension: int

    @property
    def id(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def as_dict(self) -> dict:
        return {**asdict(self), "id": self.id}


def weights_sha256(model_dir: Path) -> str:
    files = sorted(model_dir.glob("*.safetensors")) or sorted(model_dir.glob("pytorch_model*.bin"))
    if not files:
        raise ConfigError(f"embedder.image_model: no weights (*.safetensors or pytorch_model.bin) in {model_dir}")
    digest = hashlib.sha256()
    for file in files:
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class ImageEmbedder:
    """Normalised vectors of images and of query texts in the model's shared space."""

    def __init__(self, model_dir: str, batch_size: int = 32, device: str = "auto"):
        import torch
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.model_dir = Path(model_dir).expanduser().resolve()
        if not (self.model_dir / "config.json").is_file():
            raise ConfigError(f"embedder.image_model: '{model_dir}' is not a local model directory with config.json "
                              "(fetch one on a networked machine, see docs/formats.md)")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.batch_size = batch_size
        path = str(self.model_dir)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).to(self.device).eval()
        architecture = type(self.model).__name__
        if architecture not in ARCHITECTURES:
            raise ConfigError(f"embedder.image_model: {path} holds a {architecture}; use a "
                              f"{' or '.join(ARCHITECTURES)}")
        self.processor = AutoImageProcessor.from_pretrained(path, local_files_only=True, backend="pil")
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        config = self.model.config
        # SigLIP was trained on queries padded to the full length; CLIP pools at the end-of-text token
        self.padding = "max_length" if architecture == "SiglipModel" else True
        self.fingerprint = ImageFingerprint(
            name=self.model_dir.name,
            architecture=architecture,
            weights_sha256=weights_sha256(self.model_dir),
            image_size=int(config.vision_config.image_size),
            max_length=int(config.text_config.max_position_embeddings),
            dimension=int(getattr(config, "projection_dim", None) or config.text_config.hidden_size),
        )

    @property
    def dimension(self) -> int:
        return self.fingerprint.dimension

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(len(images), dimension) float32, unit norm; images are RGB (ragindex.images.load_image)."""
        return self._batched(images, lambda part: self.model.get_image_features(
            **self.processor(images=list(part), return_tensors="pt").to(self.device)))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dimension) float32, unit norm: queries for the image table."""
        return self._batched(texts, lambda part: self.model.get_text_features(**self.tokenizer(
            list(part), padding=self.padding, truncation=True, max_length=self.fingerprint.max_length,
            return_tensors="pt", return_token_type_ids=False).to(self.device)))

    def _batched(self, items: Sequence, forward) -> np.ndarray:
        import torch

        out = np.zeros((len(items), self.dimension), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(items), self.batch_size):
                pooled = forward(items[start : start + self.batch_size]).pooler_output
                out[start : start + len(pooled)] = torch.nn.functional.normalize(pooled, dim=1).float().cpu().numpy()
        return out


@cache
def load_image_embedder(model_dir: str, batch_size: int = 32, device: str = "auto") -> ImageEmbedder:
    """One loaded model per process and configuration."""
    return ImageEmbedder(model_dir, batch_size, device)
