"""OpenAI-compatible chat-completions client (stdlib only): JSON replies, bounded retries, a prompt-hash cache."""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import os
import re
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ragindex.errors import ConfigError

ENV_BASE_URL = "RAGINDEX_LLM_BASE_URL"
ENV_MODEL = "RAGINDEX_LLM_MODEL"
ENV_API_KEY = "RAGINDEX_LLM_API_KEY"
ENV_TIMEOUT = "RAGINDEX_LLM_TIMEOUT"  # read timeout, seconds
ENV_CONNECT_TIMEOUT = "RAGINDEX_LLM_CONNECT_TIMEOUT"
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)

Messages = Sequence[Mapping[str, str]]


@dataclass(frozen=True)
class LLMConfig:
    """Where the endpoint is and how patiently to talk to it; `base_url` ends before `/chat/completions`."""

    base_url: str
    model: str
    api_key: str | None = None
    connect_timeout: float = 5.0  # seconds to open the connection
    read_timeout: float = 30.0  # seconds the server may stay silent while sending the request or the reply
    max_retries: int = 2  # extra attempts after the first, for retryable faults (timeouts, 408/429/5xx, bad JSON)
    backoff: float = 1.0  # first delay; doubles each retry; a longer Retry-After is honoured up to max_backoff
    max_backoff: float = 20.0
    deadline: float = 60.0  # no new attempt starts once a request has taken this long, retries included
    max_tokens: int | None = None

    @property
    def endpoint(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides) -> LLMConfig | None:
        """The endpoint named by RAGINDEX_LLM_BASE_URL / _MODEL / _API_KEY, or None when not configured."""
        env = os.environ if env is None else env
        base_url = (env.get(ENV_BASE_URL) or "").strip()
        model = (env.get(ENV_MODEL) or "").strip()
        if not base_url or not model:
            return None
        for name, key in ((ENV_TIMEOUT, "read_timeout"), (ENV_CONNECT_TIMEOUT, "connect_timeout")):
            if env.get(name):
                overrides.setdefault(key, _seconds(name, env[name]))
        return cls(base_url=base_url, model=model, api_key=(env.get(ENV_API_KEY) or None), **overrides)

    def describe(self) -> dict:
        """The configuration without the key, for logs and run metadata."""
        return {"base_url": self.base_url, "model": self.model, "api_key_set": bool(self.api_key),
                "connect_timeout": self.connect_timeout, "read_timeout": self.read_timeout,
                "max_retries": self.max_retries, "deadline": self.deadline}


@dataclass
class LLMResult:
    """The outcome of one request: `data` is the parsed JSON object when `ok`, else `error` says why."""

    ok: bool
    key: str
    data: dict | None = None
    content: str | None = None
    error: str | None = None
    attempts: int = 0
    cached: bool = False
    errors: list[str] = field(default_factory=list)  # one line per failed attempt
    usage: dict | None = None


@dataclass
class ClientStats:
    requests: int = 0  # chat_json calls
    http_attempts: int = 0
    cache_hits: int = 0
    failures: int = 0


class _AttemptError(Exception):
    def __init__(self, message: str, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


def cache_key(model: str, messages: Messages) -> str:
    """sha256 of the model and the exact messages (temperature and JSON mode are fixed by the client)."""
    payload = json.dumps({"model": model, "messages": [dict(m) for m in messages]}, sort_keys=True,
                         ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def parse_json_content(content: str) -> dict:
    """The JSON object in a reply; a ```json fence around it is tolerated. Raises ValueError otherwise."""
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"reply is not JSON ({error.msg} at {error.pos}): {content[:80]!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"reply is JSON but not an object: {type(value).__name__}")
    return value


class LLMClient:
    """Sends chat requests at temperature 0 in JSON mode; never raises for endpoint faults."""

    def __init__(self, config: LLMConfig, cache_dir: str | Path | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.sleep = sleep
        self.stats = ClientStats()

    @classmethod
    def from_env(cls, cache_dir: str | Path | None = None, env: Mapping[str, str] | None = None,
                 **overrides) -> LLMClient | None:
        config = LLMConfig.from_env(env, **overrides)
        return None if config is None else cls(config, cache_dir)

    @property
    def model(self) -> str:
        return self.config.model

    # -- cache -------------------------------------------------------------------------------------------------
    def _cache_path(self, key: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / key[:2] / f"{key}.json"

    def cached(self, messages: Messages) -> dict | None:
        """The cached parsed reply for these messages, or None (a corrupt entry counts as absent)."""
        path = self._cache_path(cache_key(self.config.model, messages))
        if path is None or not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            data = entry["data"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return data if isinstance(data, dict) else None

    def _store(self, key: str, messages: Messages, data: dict, content: str) -> None:
        path = self._cache_path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"model": self.config.model, "messages": [dict(m) for m in messages], "data": data,
                 "content": content, "stored_at": time.time()}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(entry, handle, ensure_ascii=False)
            os.replace(tmp, path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)

    # -- requests ----------------------------------------------------------------------------------------------
    def _body(self, messages: Messages) -> bytes:
        body: dict = {"model": self.config.model, "messages": [dict(m) for m in messages], "temperature": 0,
                      "response_format": {"type": "json_object"}}
        if self.config.max_tokens:
            body["max_tokens"] = self.config.max_tokens
        return json.dumps(body).encode("utf-8")

    def _post(self, body: bytes) -> tuple[int, str, http.client.HTTPMessage, bytes]:
        """One POST: the connection opened within connect_timeout, then every send and read within read_timeout."""
        url = urllib.parse.urlsplit(self.config.endpoint)
        kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        connection = kind(url.hostname or "", url.port, timeout=self.config.connect_timeout)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        try:
            try:
                connection.connect()
            except TimeoutError:
                raise _AttemptError(f"connect timeout after {self.config.connect_timeout:g} s", True) from None
            except OSError as error:
                raise _AttemptError(f"connection error: {type(error).__name__}: {error}", True) from None
            connection.sock.settimeout(self.config.read_timeout)
            try:
                connection.request("POST", url.path + (f"?{url.query}" if url.query else ""), body, headers)
                response = connection.getresponse()
                return response.status, response.reason, response.msg, response.read()
            except TimeoutError:
                raise _AttemptError(f"read timeout after {self.config.read_timeout:g} s", True) from None
            except (http.client.HTTPException, OSError) as error:
                raise _AttemptError(f"connection error: {type(error).__name__}: {error}", True) from None
        finally:
            connection.close()

    def _attempt(self, body: bytes) -> tuple[dict, str, dict | None]:
        status, reason, headers, raw = self._post(body)
        if status >= 300:
            detail = raw[:200].decode("utf-8", "replace").strip() or "(empty body)"
            raise _AttemptError(f"HTTP {status} {reason}: {detail}", status in RETRY_STATUS,
                                _retry_after(headers.get("Retry-After")))
        try:
            envelope = json.loads(raw.decode("utf-8"))
            content = envelope["choices"][0]["message"]["content"]
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, IndexError, TypeError):
            raise _AttemptError(f"malformed chat-completions response: {raw[:120]!r}", True) from None
        if not isinstance(content, str):
            raise _AttemptError("response message has no text content", True)
        try:
            data = parse_json_content(content)
        except ValueError as error:
            raise _AttemptError(str(error), True) from None
        usage = envelope.get("usage") if isinstance(envelope, dict) else None
        return data, content, usage if isinstance(usage, dict) else None

    def chat_json(self, messages: Messages, use_cache: bool = True) -> LLMResult:
        """One JSON reply for `messages`: from the cache, or the endpoint with bounded retries."""
        self.stats.requests += 1
        key = cache_key(self.config.model, messages)
        if use_cache:
            hit = self.cached(messages)
            if hit is not None:
                self.stats.cache_hits += 1
                return LLMResult(ok=True, key=key, data=hit, cached=True)
        body = self._body(messages)
        errors: list[str] = []
        attempts = 0
        start = time.monotonic()
        for attempt in range(self.config.max_retries + 1):
            attempts += 1
            self.stats.http_attempts += 1
            try:
                data, content, usage = self._attempt(body)
            except _AttemptError as error:
                errors.append(f"attempt {attempt + 1}: {error}")
                if not error.retryable or attempt == self.config.max_retries:
                    break
                delay = min(self.config.max_backoff, self.config.backoff * 2 ** attempt)
                if error.retry_after is not None:
                    delay = min(self.config.max_backoff, max(delay, error.retry_after))
                if time.monotonic() - start + delay >= self.config.deadline:
                    errors[-1] += f" (not retried: the request's {self.config.deadline:g} s deadline would pass)"
                    break
                self.sleep(delay)
                continue
            if use_cache:
                self._store(key, messages, data, content)
            return LLMResult(ok=True, key=key, data=data, content=content, attempts=attempts, errors=errors,
                             usage=usage)
        self.stats.failures += 1
        summary = f"LLM request failed after {attempts} attempt(s): {errors[-1] if errors else 'unknown error'}"
        return LLMResult(ok=False, key=key, error=summary, attempts=attempts, errors=errors)


def _seconds(name: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0:
        raise ConfigError(f"{name}={value!r}: expected a positive number of seconds")
    return seconds


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
