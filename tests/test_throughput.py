"""`benchmark throughput` on a CPU with a tiny OpenCLIP model: a sweep's rows and files, the timing's autocast and
inference mode, an injected out-of-memory error, pinned workers and the affinity they read back, an embeddings
endpoint served on loopback by the test (real embeddings, slow, 500 and malformed answers), and the plan using a
measured speed. Loops are bounded (a few timed batches each)."""

from __future__ import annotations

import base64
import csv
import io
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fixtures import HANG_S, make_classification_wds, make_retrieval_wds, make_tiny_model
from openclip_benchmark.catalog import load_catalog
from openclip_benchmark.cli import app
from openclip_benchmark.collect.parse import parse_results
from openclip_benchmark.collect.report import build_report
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.pipeline.throughput import plan_speeds
from openclip_benchmark.planning import pricing
from openclip_benchmark.planning.calibration import measured_speeds
from openclip_benchmark.planning.cost import CostModel, ModelIndex, image_seconds, pair_work
from openclip_benchmark.throughput import timing
from openclip_benchmark.throughput.records import Measurement, make_run, write_run
from openclip_benchmark.throughput.settings import usable_cores

FAST = ["--iters", "2", "--warmup", "1"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    return make_tiny_model(tmp_path_factory.mktemp("models"), "tiny")


@pytest.fixture(autouse=True)
def one_thread():
    """A tiny model's batch is a millisecond on one thread, and can be a hundred times that on two threads when
    another process holds a core (OpenMP threads wait on each other): one thread keeps these loops short."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _throughput(*args: str):
    return CliRunner().invoke(app, ["throughput", *args], env={"COLUMNS": "220"})


def _csv(folder: Path) -> list[dict[str, str]]:
    with open(folder / "throughput.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _runs(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("throughput-*.json"))]


def test_a_sweep_writes_a_row_per_model_mode_precision_batch_size_and_image_size(tiny, tmp_path):
    out = tmp_path / "tp"
    result = _throughput("-m", tiny, "--mode", "image,text,pair", "--precision", "fp32,amp", "--batch-sizes", "2,1",
                         "--image-size", "32,48", *FAST, "--out", str(out))
    assert result.exit_code == 0, result.output
    expected = {(mode, precision, str(batch), str(size) if mode != "text" else "")
                for mode in ("image", "text", "pair") for precision in ("fp32", "amp") for batch in (1, 2)
                for size in ((32, 48) if mode != "text" else (None,))}
    table = _csv(out)
    assert len(table) == len(expected) == 20  # text once: its tower does not depend on the image size
    assert {(r["mode"], r["precision"], r["batch_size"], r["image_size"]) for r in table} == expected
    assert all(r["status"] == "ok" and float(r["samples_per_s"]) > 0 and r["device"] == "cpu" for r in table)
    [run] = _runs(out)
    assert run["environment"]["versions"]["torch"] and run["environment"]["cpu_name"]
    assert run["settings"]["batch_sizes"] == [2, 1] and run["settings"]["iters"] == 2
    for m in map(Measurement.from_json, run["measurements"]):
        assert len(m.timings_s) == 2 and m.samples == 2 * m.batch_size
        assert m.samples_per_s == pytest.approx(m.samples / m.seconds)
        assert min(m.timings_s) * 1000 <= m.ms(50) <= m.ms(95) <= m.ms(99) <= max(m.timings_s) * 1000
        assert m.peak_memory_bytes > 0 and m.memory == "cpu_max_rss"
    assert (out / "throughput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "samples/s" in result.stdout and "ms p99" in result.stdout

    again = _throughput("-m", tiny, "--mode", "text", "--precision", "fp32", "--batch-sizes", "1", *FAST,
                        "--out", str(out))
    assert again.exit_code == 0, again.output
    assert len(_runs(out)) == 2 and len(_csv(out)) == 21  # the folder's CSV keeps every run


def test_an_out_of_memory_batch_size_skips_the_larger_ones_and_timing_runs_under_inference_mode(tiny, tmp_path,
                                                                                               monkeypatch):
    import torch

    seen = []
    real = timing.load_model

    def flaky(*args, **kwargs):
        loaded = real(*args, **kwargs)
        encode = loaded.model.encode_image

        def encode_image(images, *a, **kw):
            seen.append((images.shape[0], torch.is_inference_mode_enabled(), torch.is_autocast_enabled("cpu"),
                         torch.get_autocast_dtype("cpu")))
            if images.shape[0] >= 4:
                raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
            return encode(images, *a, **kw)

        loaded.model.encode_image = encode_image
        return loaded

    monkeypatch.setattr(timing, "load_model", flaky)
    out = tmp_path / "tp"
    result = _throughput("-m", tiny, "--mode", "image,text", "--precision", "fp32,amp", "--batch-sizes", "1,2,4,8",
                         *FAST, "--out", str(out))
    assert result.exit_code == 0, result.output
    status = {(r["mode"], r["precision"], int(r["batch_size"])): r["status"] for r in _csv(out)}
    for precision in ("fp32", "amp"):
        assert [status[("image", precision, b)] for b in (1, 2, 4, 8)] == ["ok", "ok", "oom", "skipped"]
        assert [status[("text", precision, b)] for b in (1, 2, 4, 8)] == ["ok"] * 4
    assert 8 not in {batch for batch, *_ in seen}  # skipped, never run
    assert all(inference for _, inference, _, _ in seen)
    autocast = {enabled for _, _, enabled, _ in seen}
    assert autocast == {False, True}  # fp32 plain, amp autocast: on a CPU that is bf16
    assert {dtype for _, _, enabled, dtype in seen if enabled} == {torch.bfloat16}
    oom = next(m for m in _runs(out)[0]["measurements"] if m["status"] == "oom")
    assert "out of memory" in oom["error"] and oom["timings_s"] == []


def test_a_dataset_source_times_decoding_and_preprocessing_through_the_real_reader(tiny, tmp_path):
    """Catalog names resolved in --dataset-root (retrieval captions; classification prompts), or a folder."""
    root = tmp_path / "data"
    make_retrieval_wds(root, "mscoco_captions", n=6, image_size=40)
    folder = make_classification_wds(root, "cifar10", n=6, image_size=40)
    for source in (["--source", "mscoco_captions", "--dataset-root", str(root)], ["--source", str(folder)]):
        out = tmp_path / source[1].replace("/", "_")
        result = _throughput("-m", tiny, "--mode", "image,text,pair", "--precision", "fp32", "--batch-sizes", "4",
                             "--num-workers", "0", "--iters", "3", "--warmup", "1", *source, "--out", str(out))
        assert result.exit_code == 0, result.output
        [run] = _runs(out)
        assert run["settings"]["source"].endswith(("wds_mscoco_captions", "wds_cifar10"))
        for m in run["measurements"]:
            assert m["status"] == "ok" and len(m["timings_s"]) == 3
            assert m["samples"] == 2 + 4 + 2  # 6 samples in batches of 4, 2; warm-up takes a 4, then it cycles


@pytest.mark.skipif(len(usable_cores()) < 2, reason="needs two cores")
def test_pinned_workers_run_in_step_and_report_the_affinity_they_read_back(tiny, tmp_path):
    out = tmp_path / "tp"
    dry = _throughput("-m", tiny, "--processes", "2", "--cores", "0-1", "--dry-run", "--out", str(out))
    assert dry.exit_code == 0, dry.output
    assert "worker 0: cores 0, 1 thread(s)" in dry.stdout and "worker 1: cores 1, 1 thread(s)" in dry.stdout
    assert not out.exists()

    result = _throughput("-m", tiny, "--processes", "2", "--cores", "0-1", "--mode", "image", "--precision", "fp32",
                         "--batch-sizes", "1,2", *FAST, "--out", str(out))
    assert result.exit_code == 0, result.output
    [run] = _runs(out)
    workers = run["environment"]["workers"]
    assert [(w["worker"], w["cores"], w["affinity"], w["threads"]) for w in workers] == [(0, [0], [0], 1),
                                                                                         (1, [1], [1], 1)]
    for m in run["measurements"]:
        assert [w["affinity"] for w in m["workers"]] == [[0], [1]]
        assert m["samples_per_s"] == pytest.approx(sum(w["samples_per_s"] for w in m["workers"]))
        assert m["samples"] == 2 * 2 * m["batch_size"] and len(m["timings_s"]) == 4
    assert "affinity read back [1]" in (out / "logs" / "worker_1.out").read_text()
    assert (out / "logs" / "worker_0.err").exists()
    assert {r["workers"] for r in _csv(out)} == {"2"}


def test_an_unknown_model_is_refused_from_the_catalog_without_importing_open_clip(tmp_path):
    """The catalog knows every pretrained model: refusing one costs no open_clip import (about 50 s on a loaded
    machine), measured by what the process imported, not by the clock."""
    probe = ("import sys; from typer.testing import CliRunner; from openclip_benchmark.cli import app; "
             "r = CliRunner().invoke(app, ['throughput', '-m', 'NotAModel:nothing', '--dry-run']); "
             "print(r.exit_code, 'open_clip' in sys.modules, 'torch' in sys.modules); print(r.stderr)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=HANG_S)
    assert done.stdout.splitlines()[0] == "2 False False", done.stdout + done.stderr
    assert "error: unknown model 'NotAModel:nothing'" in done.stdout


# ---------------------------------------------------------------- an embeddings endpoint on loopback


class EmbeddingServer(ThreadingHTTPServer):
    """OpenAI's POST /v1/embeddings with a tiny model's real embeddings; `script(n)` picks the n-th answer:
    ok, slow (answered only when the server closes: past any client timeout, however loaded the machine), a status
    code, malformed JSON, or a URL to redirect to (302)."""

    daemon_threads = True

    def __init__(self, model_ref: str, script, key: str | None = None):
        super().__init__(("127.0.0.1", 0), _Handler)
        from openclip_benchmark.core.pair import Preprocess
        from openclip_benchmark.evaluate import load_model

        self.loaded = load_model(model_ref, "", Preprocess(), "cpu", "fp32")
        self.script, self.key = script, key
        self.lock, self.closing = threading.Lock(), threading.Event()
        self.count, self.images, self.texts, self.auth = 0, 0, 0, set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def embed(self, inputs: list[str]) -> list[list[float]]:
        import torch
        from PIL import Image

        out = []
        with self.lock, torch.inference_mode():
            for item in inputs:
                if item.startswith("data:image/"):
                    image = Image.open(io.BytesIO(base64.b64decode(item.split(",", 1)[1]))).convert("RGB")
                    emb = self.loaded.model.encode_image(self.loaded.transform(image)[None])
                    self.images += 1
                else:
                    emb = self.loaded.model.encode_text(self.loaded.tokenizer([item]))
                    self.texts += 1
                out.append(emb[0].tolist())
        return out


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        server: EmbeddingServer = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server.lock:
            n, server.count = server.count, server.count + 1
            server.auth.add(self.headers.get("Authorization"))
        answer = server.script(n) if self.path == "/v1/embeddings" else "404"
        if server.key and self.headers.get("Authorization") != f"Bearer {server.key}":
            answer = "401"
        if answer == "slow":
            server.closing.wait(HANG_S)
        if answer.isdigit():
            return self._send(int(answer), b'{"error": "no"}')
        if answer.startswith("http"):
            return self._send(302, b"", {"Location": answer})
        if answer == "malformed":
            return self._send(200, b'{"data": [{"embedding": ')
        data = [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(server.embed(body["input"]))]
        self._send(200, json.dumps({"object": "list", "data": data, "model": body["model"]}).encode())

    def _send(self, code: int, payload: bytes, headers: dict[str, str] | None = None):
        try:
            self.send_response(code)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out first
            pass


@pytest.fixture
def serve(tiny):
    servers = []

    def start(script, key=None) -> EmbeddingServer:
        server = EmbeddingServer(tiny, script, key)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.closing.set()
        server.shutdown()
        server.server_close()


def _flaky(n: int) -> str:
    """The probe (request 0) succeeds; then a 500, a malformed answer and a slow one in every six."""
    return {2: "500", 3: "malformed", 5: "slow"}.get(n % 6, "ok")


def test_endpoint_counts_failed_requests_by_kind_and_measures_the_rest(serve, tmp_path, monkeypatch):
    monkeypatch.setenv("TP_API_KEY", "sekrit-4711")
    server = serve(_flaky, key="sekrit-4711")
    out = tmp_path / "tp"
    result = _throughput("-m", "tiny-clip", "--endpoint", server.url, "--mode", "text,image,pair", "--batch-sizes",
                         "1,3", "--iters", "6", "--warmup", "0", "--concurrency", "2", "--timeout", "3",
                         "--api-key-env", "TP_API_KEY", "--image-size", "40", "--out", str(out))
    assert result.exit_code == 0, result.output
    [run] = _runs(out)
    measurements = [Measurement.from_json(m) for m in run["measurements"]]
    assert [(m.mode, m.batch_size) for m in measurements] == [(mode, b) for mode in ("text", "image", "pair")
                                                              for b in (1, 3)]
    failed: dict[str, int] = {}
    for m in measurements:
        assert m.requests["ok"] + sum(m.requests["failed"].values()) == 6
        assert m.samples == m.requests["ok"] * m.batch_size and len(m.timings_s) == m.requests["ok"]
        assert m.precision == "server" and m.status == "ok"
        for kind, count in m.requests["failed"].items():
            failed[kind] = failed.get(kind, 0) + count
    assert set(failed) == {"500", "malformed", "timeout"}
    assert server.images > 0 and server.texts > 0 and server.auth == {"Bearer sekrit-4711"}
    assert run["environment"]["device"] == "endpoint" and run["settings"]["endpoint"]["api_key_env"] == "TP_API_KEY"
    assert all("sekrit" not in p.read_text() for p in out.rglob("*") if p.suffix in (".json", ".csv"))
    assert "sekrit" not in result.output


@pytest.mark.parametrize("case", ["unreachable", "404", "401", "always 500", "always malformed"])
def test_an_endpoint_that_cannot_be_measured_is_one_error_and_writes_nothing(case, serve, tmp_path):
    if case == "unreachable":
        server = serve(lambda n: "ok")
        url = server.url
        server.shutdown()
        server.server_close()
    else:
        answer = {"always 500": "500", "always malformed": "malformed"}.get(case, "ok")
        server = serve(lambda n: answer, key="right" if case == "401" else None)
        url = server.url.replace("/v1", "/v2") if case == "404" else server.url
    out = tmp_path / "tp"
    result = _throughput("-m", "tiny-clip", "--endpoint", url, "--mode", "text", "--batch-sizes", "1", "--iters", "2",
                         "--warmup", "0", "--out", str(out))
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(lines) == 1, result.output
    assert {"unreachable": "cannot reach", "404": "HTTP 404", "401": "HTTP 401", "always 500": "500",
            "always malformed": "malformed"}[case] in lines[0]
    assert not out.exists()


class KeyCatcher(ThreadingHTTPServer):
    """Another origin (a second loopback server): records the Authorization header of every request, whatever its
    method, and answers each with one embedding, as the server a redirect pointed to did in the issue."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Catch)
        self.seen: list[tuple[str, str | None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/embeddings"


class _Catch(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self):
        self.server.seen.append((self.command, self.headers.get("Authorization")))
        payload = b'{"data": [{"embedding": [0.5, 0.25]}]}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer


@pytest.mark.parametrize("first", ["redirect", "ok"])
def test_a_redirect_is_a_failed_request_and_the_key_never_reaches_another_origin(first, serve, tmp_path, monkeypatch):
    """The probe redirected: one error. The probe answered, then every request redirected: every request failed,
    exit 2. Either way the other server sees nothing, the key least of all, and nothing is written."""
    monkeypatch.setenv("TP_API_KEY", "sekrit-4711")
    catcher = KeyCatcher()
    threading.Thread(target=catcher.serve_forever, daemon=True).start()
    try:
        server = serve(lambda n: "ok" if first == "ok" and n == 0 else catcher.url, key="sekrit-4711")
        out = tmp_path / "tp"
        result = _throughput("-m", "tiny-clip", "--endpoint", server.url, "--mode", "text", "--batch-sizes", "1",
                             "--iters", "2", "--warmup", "0", "--api-key-env", "TP_API_KEY", "--out", str(out))
    finally:
        catcher.shutdown()
        catcher.server_close()
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
    assert ("a redirect: not followed" if first == "redirect" else "2 x 302") in lines[0]
    assert "127.0.0.1" not in lines[0] and "http://<endpoint>" in lines[0]  # neither host nor path
    assert catcher.seen == [] and server.count == (1 if first == "redirect" else 3) and not out.exists()


# ---------------------------------------------------------------- the plan learns


def _measured_run(folder: Path, rate: float) -> None:
    """A run as `benchmark throughput` writes it on an H100: ViT-B-32's image tower at `rate` images/s (amp)."""
    measurements = [Measurement("ViT-B-32", "", "image", precision, batch, 224, samples=100, seconds=100 / r,
                                samples_per_s=r)
                    for precision, batch, r in (("amp", 64, rate), ("amp", 1024, 50 * rate), ("fp32", 64, rate / 3))]
    env = {"device": "cuda", "device_name": "NVIDIA H100 80GB HBM3"}
    write_run(folder, make_run("throughput-20261201T000000000000-00000000", "2026-12-01T00:00:00+00:00",
                               "2026-12-01T00:01:00+00:00", env, {}, measurements))


def test_the_plan_uses_a_measured_speed_for_the_family_and_says_so(tmp_path, monkeypatch):
    catalog = load_catalog()
    models, gpus = ModelIndex(catalog.models), pricing.load_gpus()
    _measured_run(tmp_path / "throughput", rate=100.0)
    speeds = plan_speeds([tmp_path / "throughput"], models=models, gpus=gpus, batch_size=64)
    assert set(speeds) == {("ViT-B", "H100")}  # batch 64 at amp: not the batch-1024 figure, not fp32
    b32 = models.work("ViT-B-32", "openai")
    assert speeds[("ViT-B", "H100")].image == pytest.approx(100.0 * b32.image_gflops * 1e9)
    cost = CostModel(measured=speeds)
    spec = catalog.dataset("cifar10")
    for arch, tag in (("ViT-B-32", "openai"), ("ViT-B-16", "openai"), ("ViT-L-14", "openai")):
        work = pair_work(Pair(arch, tag, "cifar10", task=spec.task), models.work(arch, tag), catalog.datasets)
        seconds = image_seconds(work, gpus["H100"], 8, cost)
        if arch == "ViT-L-14":  # another family: the datasheet's assumption
            assert seconds == image_seconds(work, gpus["H100"], 8, CostModel())
        else:  # the family's measured FLOP/s: ViT-B-16 is sized from ViT-B-32 by its FLOPs
            assert seconds == pytest.approx(spec.size * work.image_gflops / b32.image_gflops / 100.0)

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["init", "-m", "ViT-B-32:openai", "-d", "cifar10"]).exit_code == 0
    measured = runner.invoke(app, ["plan", "--gpus", "H100"], env={"COLUMNS": "220"})
    assert measured.exit_code == 0, measured.output
    assert _speed_cells(measured.stdout) == ["measured"]
    assert "ViT-B on H100: speed measured (ViT-B-32 amp batch 64" in measured.stdout
    (tmp_path / "throughput" / "throughput-20261201T000000000000-00000000.json").unlink()
    assumed = runner.invoke(app, ["plan", "--gpus", "H100"], env={"COLUMNS": "220"})
    assert assumed.exit_code == 0 and _speed_cells(assumed.stdout) == ["assumed"]
    assert "speed measured" not in assumed.stdout


def _speed_cells(table: str) -> list[str]:
    """The plan's speed column, one cell per GPU and cloud of its totals (these plans allow H100 only)."""
    return [line.split()[2] for line in table.splitlines() if line.startswith("H100 ")]


def test_the_report_shows_a_throughput_section_when_runs_exist(tmp_path):
    (tmp_path / "results").mkdir()
    parse_results(tmp_path / "results", tmp_path, catalog=load_catalog())
    page = build_report(tmp_path, tmp_path / "plain", None, tmp_path / "throughput")
    assert not (tmp_path / "plain" / "throughput.png").exists() and 'id="throughput"' not in page.read_text()
    _measured_run(tmp_path / "throughput", rate=100.0)
    page = build_report(tmp_path, tmp_path / "report", None, tmp_path / "throughput")
    assert (tmp_path / "report" / "throughput.png").read_bytes()[:4] == b"\x89PNG"
    assert 'id="throughput"' in page.read_text()


def test_a_family_speed_is_the_median_of_its_measured_models():
    catalog = load_catalog()
    models, gpus = ModelIndex(catalog.models), pricing.load_gpus()
    row = {"status": "ok", "device": "cuda", "device_name": "NVIDIA H100 80GB HBM3", "precision": "amp",
           "batch_size": 64, "image_size": 224, "mode": "image"}
    table = [{**row, "model": "ViT-B-32", "samples_per_s": 1000.0}, {**row, "model": "ViT-B-16", "samples_per_s": 300.0},
             {**row, "model": "ViT-B-16", "samples_per_s": 5.0, "device": "cpu"}]
    speeds = measured_speeds(table, models=models, gpus=gpus)
    flops = [rate * models.work(arch, "").image_gflops * 1e9 for arch, rate in (("ViT-B-32", 1000), ("ViT-B-16", 300))]
    assert speeds[("ViT-B", "H100")].image == pytest.approx(sum(flops) / 2)
    assert speeds[("ViT-B", "H100")].text is None


def test_the_throughput_plot_has_a_panel_per_model_on_shared_axes_and_a_legend_naming_each_line(tmp_path):
    """Twenty lines (five models x image/text x fp32/amp): a panel per model, a line per mode and precision, one
    legend; read from the Vega-Lite spec, and from the SVG vl-convert draws of it."""
    import vl_convert

    from openclip_benchmark.throughput.plot import throughput_spec, write_plot
    from openclip_benchmark.throughput.records import read_runs, rows

    models = ["RN50", "ViT-B-16", "ViT-B-32", "ViT-L-14", "convnext_base"]
    measurements = [Measurement(m, "openai", mode, precision, batch, 224 if mode == "image" else None, samples=64,
                                seconds=1.0, samples_per_s=batch * (i + 1) * (2.0 if precision == "amp" else 1.0))
                    for i, m in enumerate(models) for mode in ("image", "text") for precision in ("fp32", "amp")
                    for batch in (1, 8, 64)]
    measurements.append(Measurement("ViT-B-32", "openai", "image", "amp", 256, 224, status="oom"))  # not drawn
    env = {"device": "cuda", "device_name": "NVIDIA H100 80GB HBM3"}
    old = [Measurement("ViT-B-32", "openai", "image", "amp", 8, 224, samples=8, seconds=1.0, samples_per_s=1.0)]
    write_run(tmp_path, make_run("a-old", "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:01+00:00", env, {}, old))
    write_run(tmp_path, make_run("b-new", "2026-02-01T00:00:00+00:00", "2026-02-01T00:00:01+00:00", env, {}, measurements))
    spec = throughput_spec(rows(read_runs(tmp_path)))

    values = spec["datasets"]["throughput"]
    panels = [f"{m}:openai" for m in models]
    lines = sorted(f"{mode} {precision}{' @224' if mode == 'image' else ''} (NVIDIA H100 80GB HBM3)"
                   for mode in ("image", "text") for precision in ("fp32", "amp"))
    assert spec["facet"]["field"] == "model" and spec["facet"]["sort"] == panels == sorted({v["model"] for v in values})
    color = spec["spec"]["encoding"]["color"]
    assert color["field"] == "line" and color["sort"] == lines == sorted({v["line"] for v in values})
    assert color["legend"]["title"] and spec["resolve"]["scale"] == {"x": "shared", "y": "shared"}
    assert len(values) == len(models) * len(lines) * 3  # the failed point is not drawn
    assert next(v["samples_per_s"] for v in values if v["model"] == "ViT-B-32:openai" and v["batch_size"] == 8
                and v["line"].startswith("image amp")) == 8 * 3 * 2.0  # the later run replaced the earlier point
    svg = vl_convert.vegalite_to_svg(spec)
    assert all(f">{name}<" in svg for name in panels + lines)  # each panel titled, each line named in the legend
    assert write_plot(tmp_path / "throughput.png", rows(read_runs(tmp_path)))
    assert (tmp_path / "throughput.png").read_bytes()[:4] == b"\x89PNG"
    assert throughput_spec([]) is None and not write_plot(tmp_path / "none.png", [])
