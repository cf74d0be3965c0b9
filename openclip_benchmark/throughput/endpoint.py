"""Timing an OpenAI-compatible embeddings server (the `/v1/embeddings` API that SGLang and vLLM serve for CLIP):
batches of captions, of images as base64 data URLs, or of both (a pair batch of N is N captions and N images in one
request), sent by `concurrency` threads at once.

Each request is counted: ok (a 2xx answer with one embedding per input), or failed by its status code, `timeout`,
`connection` or `malformed`; failures are reported, not fatal. A redirect is never followed (its status code is the
failure): the API key goes to the endpoint's origin and nowhere else. What cannot be measured at all is one error
before anything is written: a server that cannot be reached, a redirect or a 4xx on the first request (wrong path,
model or key), or a sweep in which no request succeeded. The API key is read from an environment variable and goes
only into the request header; errors name the endpoint by its scheme only."""

from __future__ import annotations

import base64
import io
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from ..core.errors import BenchmarkError
from ..storage.store import redact
from .records import Measurement
from .settings import Sweep
from .timing import random_captions

DEFAULT_IMAGE_SIZE = 224  # what a CLIP server resizes to anyway; the payload size is what matters here
DISTINCT_IMAGES = 8  # encoding PNGs is slow in Python: a batch cycles through this many


@dataclass(frozen=True)
class Endpoint:
    url: str  # the API base, e.g. http://127.0.0.1:30000/v1
    concurrency: int = 1
    timeout: float = 60.0
    api_key_env: str | None = None  # the variable's name; its value is never stored

    def __post_init__(self):
        if not self.url.startswith(("http://", "https://")):
            raise BenchmarkError(f"--endpoint must be an http:// or https:// URL, got {self.url!r}")
        if self.concurrency < 1 or self.timeout <= 0:
            raise BenchmarkError("--concurrency must be >= 1 and --timeout > 0")
        if self.api_key_env and not os.environ.get(self.api_key_env):
            raise BenchmarkError(f"--api-key-env {self.api_key_env}: that environment variable is not set")

    @property
    def embeddings_url(self) -> str:
        return self.url.rstrip("/") + "/embeddings"

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            headers["Authorization"] = f"Bearer {os.environ[self.api_key_env]}"
        return headers

    def to_json(self) -> dict:
        return {"url": self.url, "concurrency": self.concurrency, "timeout": self.timeout,
                "api_key_env": self.api_key_env}


def image_data_urls(n: int, size: int, seed: int = 0) -> list[str]:
    """n PNG data URLs of random pixels at `size` (DISTINCT_IMAGES different ones, repeated)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    distinct = []
    for _ in range(min(n, DISTINCT_IMAGES)):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
        distinct.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode())
    return [distinct[i % len(distinct)] for i in range(n)]


def payload(model: str, mode: str, batch_size: int, image_size: int) -> bytes:
    inputs: list[str] = []
    if mode in ("text", "pair"):
        inputs += random_captions(batch_size, seed=batch_size)
    if mode in ("image", "pair"):
        inputs += image_data_urls(batch_size, image_size, seed=batch_size)
    return json.dumps({"model": model, "input": inputs, "encoding_format": "float"}).encode()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx is an answer like any other non-2xx: following it would send the key (and a GET) elsewhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def send(endpoint: Endpoint, body: bytes, expected: int) -> tuple[str, float, str]:
    """One request: (`ok` or why it failed, seconds, a snippet of what came back when it failed)."""
    request = urllib.request.Request(endpoint.embeddings_url, data=body, headers=endpoint.headers(), method="POST")
    start = time.perf_counter()
    try:
        with _OPENER.open(request, timeout=endpoint.timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        return str(exc.code), time.perf_counter() - start, _snippet(exc.read())
    except (TimeoutError, urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        kind = "timeout" if isinstance(reason, TimeoutError) or "timed out" in str(reason) else "connection"
        return kind, time.perf_counter() - start, str(reason)
    seconds = time.perf_counter() - start
    return ("ok" if _valid(raw, expected) else "malformed"), seconds, _snippet(raw)


def _valid(raw: bytes, expected: int) -> bool:
    """OpenAI's shape: {"data": [{"embedding": [numbers...]}, ...]} with one embedding per input."""
    try:
        data = json.loads(raw)["data"]
        return len(data) == expected and all(
            isinstance(item["embedding"], list) and item["embedding"]
            and all(isinstance(x, (int, float)) for x in item["embedding"]) for item in data)
    except (ValueError, KeyError, TypeError):
        return False


def _snippet(raw: bytes) -> str:
    return " ".join(raw[:200].decode("utf-8", errors="replace").split())


def probe(endpoint: Endpoint, model: str) -> None:
    """One small request first: an unreachable server or a client error (404, 401, 422) means nothing can be measured;
    a server error or a malformed answer may pass, so the sweep counts those."""
    outcome, _, detail = send(endpoint, payload(model, "text", 1, DEFAULT_IMAGE_SIZE), 1)
    where = redact(endpoint.embeddings_url)
    if outcome == "connection":
        raise BenchmarkError(f"cannot reach {where}: {redact(detail)}")
    if outcome.isdigit() and 300 <= int(outcome) < 400:
        raise BenchmarkError(f"{where} answered HTTP {outcome}, a redirect: not followed, so that the request and "
                             "its API key stay with the endpoint; give the URL it redirects to")
    if outcome.isdigit() and 400 <= int(outcome) < 500:
        hint = " (check --api-key-env)" if outcome in ("401", "403") else ""
        raise BenchmarkError(f"{where} answered HTTP {outcome}{hint}: {redact(detail)}")


def measure_endpoint(endpoint: Endpoint, model: str, mode: str, batch_size: int, image_size: int,
                     sweep: Sweep) -> Measurement:
    """Warm-up requests one by one, then `iters` requests (or as many as start within `seconds`) from
    `concurrency` threads; samples/s counts the samples of successful requests over the wall time."""
    body = payload(model, mode, batch_size, image_size)
    expected = batch_size * (2 if mode == "pair" else 1)
    for _ in range(sweep.warmup):
        send(endpoint, body, expected)
    lock, tickets = threading.Lock(), iter(range(sweep.iters or 2**62))
    latencies: list[float] = []
    outcomes: Counter = Counter()
    start = time.perf_counter()
    deadline = start + sweep.seconds if sweep.seconds is not None else None

    def client() -> None:
        while True:
            with lock:
                if next(tickets, None) is None or (deadline is not None and time.perf_counter() >= deadline):
                    return
            outcome, seconds, _ = send(endpoint, body, expected)
            with lock:
                outcomes[outcome] += 1
                if outcome == "ok":
                    latencies.append(seconds)

    with ThreadPoolExecutor(endpoint.concurrency) as pool:
        for future in [pool.submit(client) for _ in range(endpoint.concurrency)]:
            future.result()
    wall = time.perf_counter() - start
    ok = outcomes.pop("ok", 0)
    out = Measurement(model, "", mode, "server", batch_size, image_size if mode != "text" else None,
                      status="ok" if ok else "failed", samples=ok * batch_size, seconds=wall,
                      samples_per_s=ok * batch_size / wall if wall > 0 else 0.0, timings_s=latencies,
                      requests={"ok": ok, "failed": dict(sorted(outcomes.items())),
                                "concurrency": endpoint.concurrency})
    if not ok:
        out.error = "no request succeeded: " + _failures(outcomes)
    return out


def _failures(outcomes: Counter) -> str:
    return ", ".join(f"{n} x {kind}" for kind, n in sorted(outcomes.items())) or "none sent"


def run_endpoint(endpoint: Endpoint, sweep: Sweep, say: Callable[[str], None] = lambda line: None) -> list[Measurement]:
    """Every model (the server's name for it) x image size x mode x batch size; text once per model."""
    out = []
    for model, _ in sweep.models:
        probe(endpoint, model)
        for k, size in enumerate(sweep.image_sizes):
            for mode in sweep.modes:
                if mode == "text" and k > 0:
                    continue
                for batch_size in sorted(sweep.batch_sizes):
                    m = measure_endpoint(endpoint, model, mode, batch_size, size or DEFAULT_IMAGE_SIZE, sweep)
                    failed = m.requests["failed"]
                    say(f"{model} {mode} batch {batch_size}: {m.samples_per_s:,.1f} samples/s, "
                        f"{m.requests['ok']} ok" + (f", failed {_failures(Counter(failed))}" if failed else ""))
                    out.append(m)
    if not any(m.status == "ok" for m in out):
        total: Counter = Counter()
        for m in out:
            total.update(m.requests["failed"])
        raise BenchmarkError(f"no request to {redact(endpoint.embeddings_url)} succeeded ({_failures(total)}); "
                             "nothing written")
    return out
