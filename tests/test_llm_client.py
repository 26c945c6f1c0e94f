"""Tests for the LLM path against a real chat-completions HTTP server on 127.0.0.1 (no network)."""

from __future__ import annotations

import email.utils
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from test_dataset_generators import corpus

from ragindex.datasets.generators import generate
from ragindex.datasets.llm_generator import llm_rows, question_messages
from ragindex.llm.answer import judge, llm_answer
from ragindex.llm.client import LLMClient, LLMConfig, cache_key

Reply = tuple[int, object, float]  # (HTTP status, message content or raw body, delay in seconds)


class FakeChat:
    """Scripted chat-completions behaviour; `respond(request, call_number)` decides each reply."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.headers: list[dict] = []
        self.respond: Callable[[dict, int], Reply] = lambda request, n: (200, {"ok": True}, 0.0)
        self.reply_headers: dict[str, str] = {}  # sent with every reply (Retry-After)
        self.lock = threading.Lock()

    def reset(self) -> None:
        self.calls.clear()
        self.headers.clear()
        self.reply_headers = {}
        self.respond = lambda request, n: (200, {"ok": True}, 0.0)


def _handler(fake: FakeChat) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with fake.lock:
                fake.calls.append(body)
                fake.headers.append(dict(self.headers))
                number = len(fake.calls)
            if self.path != "/v1/chat/completions":
                status, content, delay = 404, "no such route", 0.0
            else:
                status, content, delay = fake.respond(body, number)
            time.sleep(delay)
            if status == 200 and not isinstance(content, bytes):
                text = content if isinstance(content, str) else json.dumps(content)
                payload = json.dumps({"id": f"c{number}", "object": "chat.completion", "model": body["model"],
                                      "choices": [{"index": 0, "finish_reason": "stop",
                                                   "message": {"role": "assistant", "content": text}}],
                                      "usage": {"prompt_tokens": 10, "completion_tokens": 5}}).encode()
            else:
                payload = content if isinstance(content, bytes) else json.dumps({"error": str(content)}).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in fake.reply_headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:  # a timed-out client is expected
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeChat, str]]:
    fake = FakeChat()
    httpd = _Server(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def fake(server, monkeypatch) -> FakeChat:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    server[0].reset()
    return server[0]


@pytest.fixture()
def base_url(server) -> str:
    return server[1]


def make_client(base_url: str, cache_dir, sleeps: list[float] | None = None, **config) -> LLMClient:
    settings = {"read_timeout": 2.0, "max_retries": 2, "backoff": 0.5, "max_backoff": 1.0, **config}
    recorded = sleeps if sleeps is not None else []
    return LLMClient(LLMConfig(base_url, "test-model", "sk-test", **settings), cache_dir, sleep=recorded.append)


MESSAGES = [{"role": "system", "content": "Reply in JSON."}, {"role": "user", "content": "Say hi."}]


def cache_files(cache_dir) -> list:
    return sorted(cache_dir.rglob("*.json")) if cache_dir.exists() else []


def test_config_from_environment() -> None:
    assert LLMConfig.from_env({}) is None
    assert LLMConfig.from_env({"RAGINDEX_LLM_BASE_URL": "http://x/v1"}) is None  # no model
    config = LLMConfig.from_env({"RAGINDEX_LLM_BASE_URL": "http://x/v1/", "RAGINDEX_LLM_MODEL": "m",
                                 "RAGINDEX_LLM_API_KEY": "sk", "RAGINDEX_LLM_TIMEOUT": "7",
                                 "RAGINDEX_LLM_CONNECT_TIMEOUT": "2.5"})
    assert (config.endpoint, config.model, config.api_key) == ("http://x/v1/chat/completions", "m", "sk")
    assert (config.read_timeout, config.connect_timeout) == (7.0, 2.5)
    defaults = LLMConfig("http://x/v1", "m")  # seconds, never minutes: a silent endpoint costs a bounded wait
    assert defaults.connect_timeout <= 10 and defaults.read_timeout <= 30 and defaults.deadline <= 60
    assert "sk" not in json.dumps(config.describe())
    assert LLMClient.from_env(env={}) is None


def test_good_json_reply_request_shape_and_cache_hit(fake, base_url, tmp_path) -> None:
    fake.respond = lambda request, n: (200, {"greeting": "hi"}, 0.0)
    client = make_client(base_url, tmp_path / "cache")
    result = client.chat_json(MESSAGES)
    assert result.ok and result.data == {"greeting": "hi"} and result.attempts == 1 and not result.cached
    request = fake.calls[0]
    assert request["temperature"] == 0 and request["response_format"] == {"type": "json_object"}
    assert request["model"] == "test-model" and request["messages"] == MESSAGES
    assert fake.headers[0]["Authorization"] == "Bearer sk-test"
    assert [p.stem for p in cache_files(tmp_path / "cache")] == [cache_key("test-model", MESSAGES)]
    # a re-run (even a new client on the same cache) costs no request
    again = make_client(base_url, tmp_path / "cache").chat_json(MESSAGES)
    assert again.ok and again.cached and again.data == {"greeting": "hi"}
    assert len(fake.calls) == 1


def test_fenced_json_is_accepted(fake, base_url, tmp_path) -> None:
    fake.respond = lambda request, n: (200, '```json\n{"a": 1}\n```', 0.0)
    assert make_client(base_url, tmp_path).chat_json(MESSAGES).data == {"a": 1}


def test_non_json_content_is_retried_then_reported_and_not_cached(fake, base_url, tmp_path) -> None:
    fake.respond = lambda request, n: (200, "Sure! Here is your answer: hi", 0.0)
    sleeps: list[float] = []
    client = make_client(base_url, tmp_path / "cache", sleeps)
    result = client.chat_json(MESSAGES)
    assert not result.ok and result.attempts == 3 and len(fake.calls) == 3
    assert "not JSON" in result.error and len(result.errors) == 3
    assert sleeps == [0.5, 1.0]  # exponential backoff, capped
    assert cache_files(tmp_path / "cache") == []
    assert client.stats.failures == 1
    client.chat_json(MESSAGES)  # a failure is never served from the cache
    assert len(fake.calls) == 6


def test_json_array_and_malformed_envelope_are_failures(fake, base_url, tmp_path) -> None:
    fake.respond = lambda request, n: (200, "[1, 2]", 0.0)
    assert "not an object" in make_client(base_url, tmp_path, max_retries=0).chat_json(MESSAGES).error
    fake.respond = lambda request, n: (200, b"<html>gateway</html>", 0.0)
    assert "malformed" in make_client(base_url, tmp_path, max_retries=0).chat_json(MESSAGES).error


def test_http_500_then_success(fake, base_url, tmp_path) -> None:
    fake.respond = lambda request, n: (500, "overloaded", 0.0) if n == 1 else (200, {"x": 1}, 0.0)
    sleeps: list[float] = []
    result = make_client(base_url, tmp_path / "cache", sleeps).chat_json(MESSAGES)
    assert result.ok and result.data == {"x": 1} and result.attempts == 2
    assert "HTTP 500" in result.errors[0] and sleeps == [0.5]
    assert len(cache_files(tmp_path / "cache")) == 1


def test_persistent_500_and_client_errors(fake, base_url, tmp_path) -> None:
    fake.respond = lambda request, n: (500, "down", 0.0)
    result = make_client(base_url, tmp_path / "cache", max_retries=1).chat_json(MESSAGES)
    assert not result.ok and result.attempts == 2 and "HTTP 500" in result.error
    fake.reset()
    fake.respond = lambda request, n: (401, "bad key", 0.0)
    result = make_client(base_url, tmp_path / "cache").chat_json(MESSAGES)
    assert not result.ok and result.attempts == 1 and "HTTP 401" in result.error  # not retryable
    assert cache_files(tmp_path / "cache") == []


def test_timeout_is_retried_with_a_limit(fake, base_url, tmp_path) -> None:
    fake.respond = lambda request, n: (200, {"late": True}, 1.0)
    client = make_client(base_url, tmp_path / "cache", read_timeout=0.2, max_retries=1)
    start = time.perf_counter()
    result = client.chat_json(MESSAGES)
    assert time.perf_counter() - start < 1.5
    assert not result.ok and result.attempts == 2 and "timeout" in result.error
    assert cache_files(tmp_path / "cache") == []


def test_unreachable_endpoint_is_reported(tmp_path) -> None:
    client = LLMClient(LLMConfig("http://127.0.0.1:9/v1", "m", max_retries=1, connect_timeout=1.0), tmp_path,
                       sleep=lambda s: None)
    result = client.chat_json(MESSAGES)
    assert not result.ok and result.attempts == 2 and "connection error" in result.error


def test_429_honours_retry_after_in_seconds_and_as_a_date(fake, base_url, tmp_path) -> None:
    fake.respond = lambda request, n: (429, "slow down", 0.0) if n == 1 else (200, {"x": 1}, 0.0)
    fake.reply_headers = {"Retry-After": "0.8"}
    sleeps: list[float] = []
    result = make_client(base_url, tmp_path, sleeps, backoff=0.1, max_backoff=5.0).chat_json(MESSAGES)
    assert result.ok and result.attempts == 2 and "HTTP 429" in result.errors[0] and sleeps == [0.8]
    fake.reset()
    fake.respond = lambda request, n: (503, "busy", 0.0) if n == 1 else (200, {"x": 2}, 0.0)
    fake.reply_headers = {"Retry-After": email.utils.formatdate(time.time() + 3, usegmt=True)}
    sleeps.clear()
    result = make_client(base_url, tmp_path, sleeps, backoff=0.1, max_backoff=10.0).chat_json(MESSAGES, False)
    assert result.ok and len(sleeps) == 1 and 1.0 < sleeps[0] <= 3.0  # the date, less the time gone by
    fake.reset()
    fake.respond = lambda request, n: (429, "quota", 0.0)
    fake.reply_headers = {"Retry-After": "3600"}  # capped at max_backoff
    sleeps.clear()
    result = make_client(base_url, tmp_path, sleeps, max_retries=1, max_backoff=2.0).chat_json(MESSAGES, False)
    assert not result.ok and sleeps == [2.0] and "HTTP 429" in result.error


def test_a_stalled_server_costs_the_read_timeout_and_the_deadline_stops_retries(fake, base_url, tmp_path) -> None:
    fake.respond = lambda request, n: (200, {"late": True}, 1.5)
    client = make_client(base_url, tmp_path, read_timeout=0.3, max_retries=5, backoff=0.1, deadline=0.5)
    start = time.perf_counter()
    result = client.chat_json(MESSAGES)
    assert time.perf_counter() - start < 1.2  # two 0.3 s attempts, not six
    assert not result.ok and result.attempts == 2 and "read timeout after 0.3 s" in result.error
    assert "deadline" in result.error


def test_malformed_json_reply_is_retried_then_reported(fake, base_url, tmp_path) -> None:
    fake.respond = lambda request, n: (200, b'{"choices": [{"message": {"content": ', 0.0)  # truncated
    sleeps: list[float] = []
    result = make_client(base_url, tmp_path, sleeps, max_retries=1).chat_json(MESSAGES)
    assert not result.ok and result.attempts == 2 and "malformed chat-completions response" in result.error
    assert len(fake.calls) == 2 and sleeps == [0.5]


def test_a_generator_that_produced_nothing_says_why(fake, base_url, tmp_path) -> None:
    fake.respond = lambda request, n: (503, "maintenance", 0.0)
    client = make_client(base_url, tmp_path, max_retries=0)
    result = generate(corpus(), ["llm"], n=2, seed=1, llm_client=client, options={"llm": {"min_words": 10}})
    notes = " ".join(result.outputs["llm"].notes)
    assert result.rows == [] and "HTTP 503" in notes and "consecutive endpoint failures" in notes


def _question_server(request: dict, n: int) -> Reply:
    passage = request["messages"][-1]["content"]
    if "Marine radios" in passage:
        return 500, "boom", 0.0
    if "Harbour masters" in passage:
        return 200, "no json here", 0.0
    first = passage.split("<<<\n", 1)[1].split(".")[0]
    return 200, {"question": f"What does this say: {first}?", "answer": first}, 0.0


def test_llm_generator_rows_failures_and_free_rerun(fake, base_url, tmp_path) -> None:
    fake.respond = _question_server
    client = make_client(base_url, tmp_path / "cache", max_retries=1)
    out = llm_rows(corpus(), client, n=10, seed=4, corpus_version="tag-9", min_words=10)
    assert len(out.rows) == out.candidates - 2 == 6
    assert {f["chunk_id"] for f in out.failures} == {"c-ships-radio", "c-ships-2"}
    assert all(f["attempts"] == 2 for f in out.failures)
    for row in out.rows:
        assert row.generator == "llm" and not row.lexical and row.generator_model == "test-model"
        assert row.reference_answer and row.reference_answer in row.reference_contexts[0]
        assert row.corpus_version == "tag-9" and row.seed == 4 and row.reference_grades == (1,)
    calls = len(fake.calls)
    again = llm_rows(corpus(), make_client(base_url, tmp_path / "cache", max_retries=1), n=10, seed=4,
                     corpus_version="tag-9", min_words=10)
    assert again.rows == out.rows
    assert len(fake.calls) == calls + 4  # only the two failed chunks are asked again (2 attempts each)


def test_llm_generator_stops_on_a_dead_endpoint(fake, base_url, tmp_path) -> None:
    fake.respond = lambda request, n: (503, "maintenance", 0.0)
    client = make_client(base_url, tmp_path, max_retries=0)
    out = llm_rows(corpus(), client, n=5, min_words=10, max_consecutive_failures=3)
    assert out.rows == [] and len(fake.calls) == 3 and "consecutive" in out.notes[0]


def test_generate_uses_the_llm_client_when_configured(fake, base_url, tmp_path) -> None:
    fake.respond = _question_server
    result = generate(corpus(), ["heading", "llm"], n=2, seed=1, llm_client=make_client(base_url, tmp_path),
                      options={"llm": {"min_words": 10}})
    assert result.counts() == {"heading": 2, "llm": 2}
    assert question_messages(corpus()[0])[1]["content"].startswith("Document title: Coastal notes")


HITS = [
    {"chunk_id": "c1", "doc_id": "a.md", "heading_path": "Tides", "title": "Coast",
     "text": "Tides\n\nSpring tides happen near full and new moons."},
    {"chunk_id": "c2", "doc_id": "b.md", "heading_path": "Lamps", "title": "Coast",
     "text": "Lamps\n\nThe lamp burns paraffin oil stored in the cellar."},
]


def test_llm_answer_cites_numbered_sources_and_falls_back(fake, base_url, tmp_path) -> None:
    fake.respond = lambda request, n: (200, {"answer": "Paraffin oil [2] [7].", "citations": [2, "x"]}, 0.0)
    client = make_client(base_url, tmp_path / "a")
    answer = llm_answer("What fuel does the lamp burn?", HITS, client)
    assert answer.mode == "llm" and answer.cited_chunk_ids == ["c2"] and answer.error is None
    assert "[1] a.md :: Tides" in fake.calls[0]["messages"][1]["content"]
    fake.respond = lambda request, n: (500, "down", 0.0)
    fallback = llm_answer("What fuel does the lamp burn?", HITS, make_client(base_url, tmp_path / "b",
                                                                            max_retries=0))
    assert fallback.mode == "extractive" and fallback.cited_chunk_ids == ["c2"] and "HTTP 500" in fallback.error


def test_judge_averages_repeats_and_keeps_raw_verdicts(fake, base_url, tmp_path) -> None:
    def grader(request: dict, n: int) -> Reply:
        system = request["messages"][0]["content"]
        repeat = int(system.split("evaluation pass ")[1].split(" ")[0])
        if "claims" in system:
            if repeat == 3:
                return 200, "not json", 0.0
            return 200, {"claims": [{"claim": "x", "supported": True},
                                    {"claim": "y", "supported": repeat == 1}]}, 0.0
        return 200, {"relevancy": [1.0, 0.5, 0.9][repeat - 1], "reason": "ok"}, 0.0

    fake.respond = grader
    client = make_client(base_url, tmp_path, max_retries=0)
    result = judge("What fuel?", "Paraffin oil [2].", [h["text"] for h in HITS], client, repeats=3)
    assert result.faithfulness == pytest.approx((1.0 + 0.5) / 2)  # the non-JSON repeat is left out
    assert result.answer_relevancy == pytest.approx(0.8)
    assert result.valid == {"faithfulness": 2, "answer_relevancy": 3}
    assert len(result.verdicts) == 6 and sum(not v["ok"] for v in result.verdicts) == 1
    assert len(fake.calls) == 6  # every repeat is its own request
    calls = len(fake.calls)
    rerun = judge("What fuel?", "Paraffin oil [2].", [h["text"] for h in HITS], client, repeats=3)
    assert rerun.as_dict()["faithfulness"] == result.faithfulness
    assert len(fake.calls) == calls + 1  # only the failed (uncached) verdict is asked again
    with pytest.raises(ValueError, match="at least 3"):
        judge("q", "a", [], client, repeats=2)


def test_bad_timeout_setting_is_a_config_error() -> None:
    from ragindex.errors import ConfigError

    with pytest.raises(ConfigError, match="RAGINDEX_LLM_TIMEOUT"):
        LLMConfig.from_env({"RAGINDEX_LLM_BASE_URL": "http://x/v1", "RAGINDEX_LLM_MODEL": "m",
                            "RAGINDEX_LLM_TIMEOUT": "soon"})
