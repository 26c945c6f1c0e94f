"""The embedding model as a resource: its fingerprint and tokenizer are cheap; the weights load on first embed."""

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import PrivateAttr

from ragindex.chunking import Chunker, make_chunker
from ragindex.config import ChunkerConfig
from ragindex.embedding import Embedder, load_embedder


class EmbedderResource(ConfigurableResource):
    """A packaged model name or a local model directory; precision and device chosen for the machine."""

    model: str = "all-MiniLM-L6-v2"
    batch_size: int = 64
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 | int8 (ragindex/embedding_runtime.py chooses for auto)
    weights_hashes: str  # the weights-hash cache file (DataLayout.weights_hashes)
    onnx_exports: str  # exported ONNX graphs (DataLayout.onnx_exports)
    image_model: str | None = None  # a local CLIPModel / SiglipModel directory: images also get pixel vectors

    _embedder: Embedder | None = PrivateAttr(default=None)

    def embedder(self) -> Embedder:
        """The embedder (tokenizer and fingerprint ready; the model itself loads on the first embed)."""
        if self._embedder is None:
            self._embedder = load_embedder(self.model, self.batch_size, self.device, self.precision,
                                           Path(self.weights_hashes), Path(self.onnx_exports))
        return self._embedder

    def fingerprint(self) -> dict:
        return self.embedder().fingerprint.as_dict()

    def fingerprint_id(self) -> str:
        return self.embedder().fingerprint.id

    def dimension(self) -> int:
        return self.embedder().dimension

    def image_embedder(self):
        """The image-text model (CLIP / SigLIP), loaded once per process; None when none is configured."""
        if not self.image_model:
            return None
        from ragindex.vision.embedder import load_image_embedder

        return load_image_embedder(self.image_model, self.batch_size, self.device)

    def chunker(self, config: ChunkerConfig) -> Chunker:
        return make_chunker(config, self.embedder())
