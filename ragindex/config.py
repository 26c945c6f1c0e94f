"""Typed project configuration, validated from the YAML files in configs/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ragindex.documents import GROUP_NAME
from ragindex.errors import ConfigError
from ragindex.paths import PROJECT_ROOT, SAFE_NAME, DataLayout, default_config_path

SourceType = Literal["directory", "beir", "pydoc_topics"]
SearchMode = Literal["dense", "dense_exact", "fts", "hybrid"]
SEARCH_MODES: tuple[str, ...] = get_args(SearchMode)
DEFAULT_INCLUDE = ["*.md", "*.markdown", "*.txt", "*.rst", "*.html", "*.htm", "*.pdf",
                   "*.png", "*.jpg", "*.jpeg", "*.webp", "*.gif"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


GroupName = Annotated[str, Field(pattern=GROUP_NAME.pattern)]


class AccessRule(_Strict):
    """Documents whose id (path relative to the source folder; a BEIR `_id`) matches `glob` (fnmatch: `*` also
    crosses `/`) are visible to these groups."""

    glob: str = Field(min_length=1)
    groups: list[GroupName]


class AccessConfig(_Strict):
    """Who may retrieve a source's chunks (ragindex/access.py, docs/security.md): a document's front matter
    `access: [group, ...]` wins, then the first matching rule, then the default (`public`: every caller; `deny`:
    no caller)."""

    default: Literal["public", "deny"] = "public"
    rules: list[AccessRule] = Field(default_factory=list)


class SourceConfig(_Strict):
    """One corpus: a directory tree, a BEIR-layout folder, or the embedded CPython reference."""

    name: str = Field(pattern=SAFE_NAME.pattern)
    type: SourceType
    path: str | None = None
    include: list[str] = Field(default_factory=lambda: list(DEFAULT_INCLUDE))
    max_file_bytes: int = Field(default=5_000_000, gt=0)
    always_hash: bool = False
    max_image_pixels: int = Field(default=50_000_000, gt=0)  # larger images are skipped, never decoded
    license: str | None = None  # shown on published dataset cards
    access: AccessConfig | None = None  # None: the top-level `access`

    def licence(self) -> str:
        return self.license or ("PSF-2.0 (CPython documentation)" if self.type == "pydoc_topics" else "unknown")

    @model_validator(mode="after")
    def _path_needed(self) -> SourceConfig:
        if self.type in ("directory", "beir") and not self.path:
            raise ValueError(f"source '{self.name}' of type {self.type} needs a 'path'")
        return self

    def resolved_path(self) -> Path:
        path = Path(self.path or "")
        return path if path.is_absolute() else (PROJECT_ROOT / path).resolve()


class ChunkerConfig(_Strict):
    """Structure-aware splitting, then token windows counted with the model's tokenizer."""

    max_tokens: int = Field(default=256, gt=8)
    overlap_tokens: int = Field(default=32, ge=0)
    min_tokens: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _overlap_smaller(self) -> ChunkerConfig:
        if self.overlap_tokens >= self.max_tokens // 2:
            raise ValueError("chunker.overlap_tokens must be less than half of chunker.max_tokens")
        return self


class EmbedderConfig(_Strict):
    """Which model embeds, and how: a packaged model name or a local model directory."""

    model: str = "all-MiniLM-L6-v2"
    batch_size: int = Field(default=64, gt=0)  # rows per batch on a GPU; CPU batches hold BATCH_TOKENS tokens
    device: Literal["auto", "cpu", "cuda"] = "auto"
    image_model: str | None = None  # a local CLIPModel / SiglipModel directory: images also get pixel vectors
    # auto: bf16 where the CPU has native bf16 (or on CUDA) and a load-time probe agrees with fp32, else fp32;
    # int8 (ONNX Runtime, own fingerprint) only when asked for. See ragindex/embedding_runtime.py.
    precision: Literal["auto", "fp32", "bf16", "int8"] = "auto"


ANN_MIN_ROWS_FLOOR = 256  # no ANN index below this many rows, whatever ann.min_rows says


class AnnConfig(_Strict):
    """Vector index parameters; below min_rows the table is searched exactly."""

    min_rows: int = Field(default=4096, ge=0)
    index_type: Literal["IVF_HNSW_SQ", "IVF_PQ", "IVF_FLAT"] = "IVF_HNSW_SQ"
    num_partitions: int | None = None  # None: LanceDB sizes them per index type (IndexStore._create_ann)
    nprobes: int = Field(default=20, gt=0)
    refine_factor: int | None = None
    ef: int = Field(default=64, gt=0)


class RetentionConfig(_Strict):
    """Which old table versions a build may delete (ragindex/retention.py); MLflow-aliased versions never."""

    keep_last_tags: int = Field(default=10, ge=1)  # the newest build tags are always kept
    older_than_days: float = Field(default=7, ge=0)  # versions and tags younger than this are always kept


class IndexConfig(_Strict):
    """Where the LanceDB table lives and which indexes it carries."""

    uri: str | None = None
    table: str = Field(default="chunks", pattern=SAFE_NAME.pattern)
    fts: bool = True
    fts_title_boost: float = Field(default=2.0, ge=0)  # title BM25 x this, added once per document (search.py)
    fts_stop_words: bool = False  # keep 'with', 'not', 'in'...: they are keywords in technical corpora
    # a second vector per chunk, of its heading path (else title): dense scores add title_weight x its cosine.
    # off: not built; auto: built, the weight chosen by the evaluation's cross-validation (0 unless it helps);
    # on: built, title_weight served as configured (ragindex/titles.py)
    title_vectors: Literal["off", "auto", "on"] = "off"
    title_weight: float = Field(default=0.5, ge=0)  # served with title_vectors: on
    ann: AnnConfig = AnnConfig()
    max_delete_fraction: float = Field(default=0.3, ge=0, le=1)
    confirm_deletions: bool = False
    retention: RetentionConfig = RetentionConfig()
    lock_timeout_s: float = Field(default=3600, gt=0)  # a run waits this long for another writer of its table+source

    @field_validator("title_vectors", mode="before")
    @classmethod
    def _yaml_switch(cls, value):
        """YAML 1.1 reads an unquoted off/on as a boolean."""
        return {False: "off", True: "on"}.get(value, value) if isinstance(value, bool) else value

    def resolved_uri(self) -> str:
        return self.uri or str(DataLayout.current().lancedb)


class StorageConfig(_Strict):
    """Where the intermediate data of builds lives (documents, chunks, step outputs): a local path or an object-store
    URI (`s3://bucket/prefix`) that every step process can reach. Credentials and the endpoint come from the
    environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL)."""

    uri: str | None = None  # default: data/staging

    def resolved_uri(self) -> str:
        return self.uri or str(DataLayout.current().staging)


class ComputeConfig(_Strict):
    """Where the embed step runs: in this process, or fanned out over a Ray cluster (ragindex/compute/ray_embed.py).

    `address` (else $RAY_ADDRESS) joins a running cluster ("auto", "127.0.0.1:6379", "ray://head:10001"); with
    neither, a local head is started on 127.0.0.1 for the run. Each actor loads the model once."""

    engine: Literal["local", "ray"] = "local"
    address: str | None = None
    num_actors: int = Field(default=2, gt=0)  # actor pool size: model replicas
    cpus_per_actor: float = Field(default=1, gt=0)  # also the torch threads of each actor
    num_gpus: float = Field(default=0, ge=0)  # per actor; > 0 runs the model on CUDA
    batch_size: int = Field(default=256, gt=0)  # texts per actor call


class SearchConfig(_Strict):
    """Candidates per mode before fusion, the per-document cap, the fusion floor and the answer context budget.

    How hybrid fuses is not configured here: it is the evaluation's FusionChoice (ragindex/evaluation/fusion.py),
    recorded in MLflow and the registered model, passed to the Retriever; without one the documented prior."""

    candidates: int = Field(default=100, gt=0)
    per_doc: int = Field(default=2, ge=0)  # at most this many chunks of one document in a result list; 0 = no cap
    fusion_margin: float = Field(default=0.005, ge=0)  # a fusion must beat the best single mode by this in CV
    context_tokens: int = Field(default=512, gt=0)  # `ask`: a hit widened with its neighbours up to this many tokens
    max_k: int = Field(default=1000, gt=0)  # the most results one request may ask for (CLI and served model)


class EvaluationConfig(_Strict):
    """Judged queries per source (BEIR sources bring their own queries.jsonl and qrels)."""

    datasets: dict[str, str] = Field(default_factory=dict)  # source name -> BEIR folder
    depth: int = Field(default=100, gt=0)
    folds: int = Field(default=5, ge=2)
    seed: int = 0


class DatasetConfig(_Strict):
    """Evaluation sets generated from the index for sources without judged queries."""

    generators: list[Literal["heading", "cloze", "llm", "qrels"]] = Field(default_factory=lambda: ["heading", "cloze"])
    n: int = Field(default=100, gt=0)  # rows per generator
    seed: int = 0
    out: str | None = None  # default: data/datasets

    def resolved_out(self) -> Path:
        return Path(self.out) if self.out else DataLayout.current().datasets


class ServingConfig(_Strict):
    """The registered retriever and its promotion gate."""

    model_name: str = "ragindex-retriever"
    promotion_margin: float = Field(default=0.01, ge=0)
    gate_mode: SearchMode = "hybrid"


class QualityConfig(_Strict):
    """Thresholds of the data-quality asset checks (Great Expectations suites, assets/quality.py)."""

    unit_norm_tolerance: float = Field(default=1e-3, gt=0)  # |‖v‖ - 1| allowed for every vector
    max_unindexed_share: float = Field(default=0.1, ge=0, le=1)  # rows not yet in an index, per index
    min_ann_recall_at_10: float = Field(default=0.9, ge=0, le=1)  # ANN vs exact search, mean over queries
    recall_sample_size: int = Field(default=50, gt=0)  # table vectors used as queries (seeded sample)
    recall_seed: int = 0
    data_docs: bool = True  # also render GE's HTML Data Docs next to the JSON results


class DriftConfig(_Strict):
    """Embedding-drift tests (assets/drift.py, `ragindex drift`): decision level, check thresholds, sample sizes."""

    alpha: float = Field(default=0.01, gt=0, lt=1)  # combined (Holm) p <= alpha: drifted, the sensor may re-index
    warn_p: float = Field(default=0.01, gt=0, lt=1)  # asset check fails with severity WARN when p < warn_p
    error_p: float = Field(default=1e-4, gt=0, lt=1)  # ... and with severity ERROR when p < error_p
    max_samples: int = Field(default=5000, ge=20)  # rows per side each test draws (seeded)
    max_rows: int = Field(default=20_000, ge=20)  # rows read from a table or source per side (seeded sample)
    min_rows: int = Field(default=20, ge=20)  # fewer rows on a side: "too few rows to test", not a failure
    # corpus rows compared: one per document (mean of its chunk vectors) or one per chunk; chunks of a document
    # are alike, so chunk rows are not independent and two halves of one corpus split by document "drift"
    unit: Literal["document", "chunk"] = "document"
    query_window_hours: float = Field(default=24.0, gt=0)  # query drift: this window vs the one before it
    reindex_on_drift: bool = True  # the drift sensor requests an index run for a source whose drift is flagged
    seed: int = 0

    @model_validator(mode="after")
    def _error_below_warn(self) -> DriftConfig:
        if self.error_p > self.warn_p:
            raise ValueError("drift.error_p must not exceed drift.warn_p (ERROR is the stronger evidence)")
        return self


class UpkeepConfig(_Strict):
    """The daily upkeep (compaction, index folding, version cleanup) and the limits its checks warn past."""

    max_fragments: int = Field(default=64, gt=0)  # data fragments of a table
    max_versions: int = Field(default=200, gt=0)  # versions kept on disk
    max_unindexed_rows: int = Field(default=10_000, ge=0)  # rows an index of the table still lacks


class ProjectConfig(_Strict):
    """The whole configuration file."""

    sources: list[SourceConfig]
    chunker: ChunkerConfig = ChunkerConfig()
    embedder: EmbedderConfig = EmbedderConfig()
    index: IndexConfig = IndexConfig()
    storage: StorageConfig = StorageConfig()
    compute: ComputeConfig = ComputeConfig()
    search: SearchConfig = SearchConfig()
    quality: QualityConfig = QualityConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    datasets: DatasetConfig = DatasetConfig()
    serving: ServingConfig = ServingConfig()
    drift: DriftConfig = DriftConfig()
    access: AccessConfig = AccessConfig()  # for sources without their own `access`
    upkeep: UpkeepConfig = UpkeepConfig()

    @model_validator(mode="after")
    def _unique_sources(self) -> ProjectConfig:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; repeated: {', '.join(dupes)}")
        return self

    def source(self, name: str) -> SourceConfig:
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.sources) or "none"
        raise ConfigError(f"unknown source '{name}' (configured: {known}); add it under 'sources:' in the config")


def _one_line(error: ValidationError, origin: str) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "top level"
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{origin}: {where}: {first['msg']}{more}"


def parse_config(raw: dict, origin: str = "config") -> ProjectConfig:
    """Validate a mapping into a ProjectConfig, raising ConfigError with one line on failure."""
    try:
        return ProjectConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_one_line(error, origin)) from None


def load_config(path: str | Path | None = None) -> ProjectConfig:
    """Read and validate a YAML configuration file (default: configs/default.yaml or $RAGINDEX_CONFIG)."""
    path = Path(path) if path else default_config_path()
    if not path.is_file():
        raise ConfigError(f"config file {path} not found; pass an existing YAML file (see configs/)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return parse_config(raw, origin=str(path))
