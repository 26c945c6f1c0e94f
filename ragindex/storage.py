"""One way to reach a storage URI: a local path or `s3://bucket/prefix`, for LanceDB and for small JSON files.

Credentials and the endpoint come from the standard AWS environment variables, never from the config:
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION (default us-east-1), AWS_ENDPOINT_URL (an S3-compatible
server such as MinIO or moto; `http://` endpoints are allowed).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def lance_options(uri: str) -> dict[str, str]:
    """LanceDB / Lance `storage_options` for a URI (empty for local paths)."""
    if not uri.startswith("s3://"):
        return {}
    options = {"aws_region": os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))}
    if "AWS_ACCESS_KEY_ID" in os.environ:
        options["aws_access_key_id"] = os.environ["AWS_ACCESS_KEY_ID"]
        options["aws_secret_access_key"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["aws_endpoint"] = endpoint
        options["allow_http"] = str(endpoint.startswith("http://")).lower()
    return options


def connect(uri: str):
    """A LanceDB connection to a local folder or an object-store prefix."""
    import lancedb

    if not is_remote(uri):
        Path(uri).mkdir(parents=True, exist_ok=True)
    return lancedb.connect(uri, storage_options=lance_options(uri) or None)


@dataclass(frozen=True)
class JsonStore:
    """Small JSON documents under a base URI (step outputs), readable by any process that reaches the URI."""

    uri: str

    def _fs(self):
        from pyarrow import fs

        if not self.uri.startswith("s3://"):
            return fs.LocalFileSystem(), str(Path(self.uri).resolve())
        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        s3 = fs.S3FileSystem(
            access_key=os.environ.get("AWS_ACCESS_KEY_ID"), secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
            region=os.environ.get("AWS_REGION", "us-east-1"),
            endpoint_override=endpoint.split("://", 1)[1] if endpoint else None,
            scheme=endpoint.split("://", 1)[0] if endpoint else "https")
        return s3, self.uri[len("s3://"):].rstrip("/")

    def write(self, key: str, value: dict) -> str:
        fs, base = self._fs()
        path = f"{base}/{key}"
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(path) as handle:
            handle.write(json.dumps(value, sort_keys=True).encode())
        return f"{self.uri.rstrip('/')}/{key}"

    def read(self, key: str) -> dict | None:
        from pyarrow import fs as pafs

        fs, base = self._fs()
        path = f"{base}/{key}"
        if fs.get_file_info(path).type == pafs.FileType.NotFound:
            return None
        with fs.open_input_stream(path) as handle:
            return json.loads(handle.read().decode())
