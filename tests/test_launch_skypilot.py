"""SkyPilot backend: rendering validated by SkyPilot's own schema, secrets only as secrets, submission faked only at
the SDK calls (sky.jobs.launch, sky.get, sky.jobs.queue_v2, sky.launch, sky.down, pool calls)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fixtures import HANG_S
from openclip_benchmark import catalog
from openclip_benchmark.planning import plan
from openclip_benchmark.planning.cost import ModelIndex
from openclip_benchmark.planning.options import PlanOptions
from openclip_benchmark.planning import pricing
from openclip_benchmark.cli import app
from openclip_benchmark.core.errors import BenchmarkError
from openclip_benchmark.backends import interactive, pools, skypilot, skypilot_task
from openclip_benchmark.core.manifest import Manifest, RunSettings
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.pipeline.launch import shard_job, status_summary, submit_shards
from openclip_benchmark.storage.store import TRANSIENT_EXIT_CODE, open_store
from openclip_benchmark.tracker import Tracker, open_tracker

SENTINEL = "SENTINEL-" + uuid.uuid4().hex


class FakeSky:
    """Stands in for the API server at the SDK boundary; records what it was sent."""

    def __init__(self, fail_names=()):
        self.launched: list[tuple] = []
        self.fail_names = set(fail_names)
        self.queue: list = []
        self.calls: list[tuple] = []
        self.next_id = 100

    def install(self, monkeypatch):
        import sky

        monkeypatch.setattr(sky.jobs, "launch", self.jobs_launch)
        monkeypatch.setattr(sky.jobs, "queue_v2", lambda **kw: ("queue", kw))
        monkeypatch.setattr(sky, "get", self.get)
        monkeypatch.setattr(sky, "launch", lambda task, **kw: self.calls.append(("launch", task, kw)) or ("req", None))
        monkeypatch.setattr(sky, "down", lambda name, **kw: self.calls.append(("down", name)) or ("req", None))
        monkeypatch.setattr(sky.jobs, "pool_apply", lambda task, name, **kw: self.calls.append(("pool_apply", task, name, kw)) or ("req", None))
        monkeypatch.setattr(sky.jobs, "pool_down", lambda name, **kw: self.calls.append(("pool_down", name)) or ("req", None))
        return self

    def jobs_launch(self, task, name=None, pool=None, **kw):
        self.launched.append((task, name, pool))
        return ("launch", name)

    def get(self, request):
        kind, arg = request
        if kind == "launch":
            if arg in self.fail_names:
                raise RuntimeError(f"controller refused {arg}")
            self.next_id += 1
            return ([self.next_id], None)
        if kind == "queue":
            return (self.queue, len(self.queue), {}, len(self.queue))
        return None


@pytest.fixture
def secrets_env(monkeypatch):
    for name in skypilot_task.SECRET_NAMES:
        monkeypatch.setenv(name, f"{SENTINEL}-{name}")


def small_plan(
    models=(("ViT-B-32", "openai"), ("ViT-L-14", "openai"), ("ViT-H-14", "laion2b_s32b_b79k")),
    names=("cifar10", "imagenet1k", "mscoco_captions"),
):
    datasets = catalog.load_datasets()
    pairs = [Pair(m, p, d, task=datasets[d].task) for m, p in models for d in names]
    result = plan.plan_shards(
        pairs, models=ModelIndex(catalog.load_models()), datasets=datasets, gpus=pricing.load_gpus(),
        prices=pricing.load_prices(), options=PlanOptions(target_s=10 * 60),
    )
    return pairs, result


def job(shard):
    """A planned shard as the job a backend launches."""
    return shard_job(shard, "s3://b/p", RunSettings(), spot=True)


def tracker_with(path: Path, pairs) -> Path:
    with open_tracker(path, create=True) as t:
        t.add(pairs)
    return path


def project(tmp_path, monkeypatch, **plan_args):
    """A project folder with a tracker of the small plan's pairs, and SkyPilot faked at the SDK."""
    monkeypatch.chdir(tmp_path)
    pairs, result = small_plan(**plan_args)
    tracker_with(tmp_path / "results.csv", pairs)
    return pairs, result, FakeSky().install(monkeypatch)


def test_every_rendered_task_passes_skypilots_schema_with_secrets_only_as_secrets(secrets_env):
    _, result = small_plan()
    template = skypilot_task.load_yaml(skypilot.TEMPLATE)
    assert len(result.shards) >= 2
    secrets = skypilot_task.secrets_from_env()
    for shard in result.shards:
        config = skypilot.render_task_config(template, job(shard), spot=True, clouds=("aws", "gcp"))
        task = skypilot_task.build_task(config, {"MANIFEST_URL": f"s3://b/p/_manifests/{shard.shard_id}.json"}, secrets)
        assert task.name == f"ocb-{shard.shard_id}"
        assert task.envs["MANIFEST_URL"].endswith(f"{shard.shard_id}.json")
        assert task.secrets["AWS_SECRET_ACCESS_KEY"].get_secret_value() == f"{SENTINEL}-AWS_SECRET_ACCESS_KEY"
        assert task.run == template["run"] and task.setup == template["setup"]  # fixed text, nothing formatted in
        resources = list(task.resources)
        assert {str(r.cloud).lower() for r in resources} == {"aws", "gcp"}
        for r in resources:
            assert r.use_spot and r.accelerators == {shard.gpu: 1}
            assert TRANSIENT_EXIT_CODE in r.job_recovery["recover_on_exit_codes"]
        assert all(v is None for v in config["secrets"].values())
        assert SENTINEL not in yaml.safe_dump(config)
    for path in (interactive.INTERACTIVE, pools.POOL):  # the other configs validate too
        skypilot_task.build_task(skypilot_task.load_yaml(path), {}, secrets)


def test_pool_tasks_drop_setup_and_on_demand_has_no_spot(secrets_env):
    _, result = small_plan()
    shard = result.shards[0]
    template = skypilot_task.load_yaml(skypilot.TEMPLATE)
    pooled = skypilot_task.build_task(skypilot.render_task_config(template, job(shard), spot=True, pool="p"), {"MANIFEST_URL": "x"}, [])
    assert pooled.setup is None and pooled.run == template["run"]
    demand = skypilot_task.build_task(skypilot.render_task_config(template, job(shard), spot=False), {"MANIFEST_URL": "x"}, [])
    assert not any(r.use_spot for r in demand.resources)
    assert pools.pool_gpu() == "L4"


def test_a_broken_template_is_refused_before_anything_is_sent(tmp_path, secrets_env, monkeypatch):
    fake = FakeSky().install(monkeypatch)
    bad = yaml.safe_load(skypilot.TEMPLATE.read_text())
    bad["resources"]["job_recovery"]["recover_on_exit_codes"] = ["seventy-five"]
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(bad))
    monkeypatch.setattr(skypilot, "TEMPLATE", tmp_path / "t.yaml")
    _, result = small_plan()
    with pytest.raises(BenchmarkError, match="invalid SkyPilot task") as err:
        submit_shards(
            "skypilot", list(result.shards), store=FakeStore(), settings=RunSettings(), tracker_path=tmp_path / "r.csv",
            spot=True, render_dir=tmp_path / "render",
        )
    assert SENTINEL not in str(err.value)
    assert fake.launched == []


class FakeStore:
    url = "s3://bucket/prefix"
    endpoint_url = None
    credentials = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")

    def __init__(self):
        self.objects = {}

    def url_for(self, key):
        return f"{self.url}/{key}"

    def put(self, key, data):
        self.objects[key] = data


def test_launch_submits_uploads_manifests_records_job_ids_and_leaks_no_secret(
    tmp_path, monkeypatch, s3_bucket, capsys
):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", f"{SENTINEL}-aws")  # moto's server takes any signature
    monkeypatch.setenv("HF_TOKEN", f"{SENTINEL}-hf")
    monkeypatch.chdir(tmp_path)
    pairs, result = small_plan()
    tracker = tracker_with(tmp_path / "results.csv", pairs)
    fake = FakeSky(fail_names={f"ocb-{result.shards[-1].shard_id}"}).install(monkeypatch)
    store = open_store(f"s3://{s3_bucket}/runs")
    report = submit_shards(
        "skypilot", list(result.shards), store=store, settings=RunSettings(), tracker_path=tracker, spot=True,
        clouds=("aws",),
    )
    # partial failure: the last submission was refused, the others launched and were recorded
    assert [s.shard_id for s, _ in report.failed] == [result.shards[-1].shard_id]
    assert len(report.launched) == len(result.shards) - 1
    assert [name for _, name, _ in fake.launched] == [f"ocb-{s.shard_id}" for s in result.shards]
    state = Tracker.load(tracker)
    for shard, job_id in report.launched:
        for pair in shard.pairs:
            e = state.get(pair)
            assert (e.status, e.job_id, e.shard_id, e.attempts, e.est_gpu) == ("launched", job_id, shard.shard_id, 1, shard.gpu)
            assert e.est_runtime_s > 0 and e.est_cost_usd > 0
    for pair in result.shards[-1].pairs:
        assert state.get(pair).status == "pending"
    # the task each job got: manifest URL in envs, credentials in secrets, and the manifest in the bucket
    for (task, _, _), shard in zip(fake.launched, result.shards):
        url = task.envs["MANIFEST_URL"]
        assert url == f"s3://{s3_bucket}/runs/_manifests/{shard.shard_id}.json"
        manifest = Manifest.from_json(store.get(f"_manifests/{shard.shard_id}.json"))
        assert manifest.pairs == shard.pairs and manifest.store == store.url
        assert manifest.settings.num_workers == shard.offer.vcpus
        assert task.secrets["AWS_SECRET_ACCESS_KEY"].get_secret_value() == f"{SENTINEL}-aws"
        assert task.secrets["HF_TOKEN"].get_secret_value() == f"{SENTINEL}-hf"
    # no sentinel in any written file, object or output
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    for shard in result.shards:
        rendered = yaml.safe_load((tmp_path / ".benchmark" / "launch" / f"ocb-{shard.shard_id}.yaml").read_text())
        assert rendered["envs"]["MANIFEST_URL"].endswith(f"{shard.shard_id}.json")
        assert all(v is None for v in rendered["secrets"].values())
    for path in written:
        assert SENTINEL.encode() not in path.read_bytes(), path
    for info in store.list():
        assert SENTINEL.encode() not in store.get(info.key)
    out = capsys.readouterr()
    assert SENTINEL not in out.out + out.err


def test_an_explicit_endpoint_reaches_the_jobs(tmp_path, monkeypatch, s3_bucket, s3_env):
    """`--endpoint-url` without R2_ENDPOINT_URL: jobs must write to that endpoint, not fall back to AWS S3."""
    monkeypatch.setenv("R2_ENDPOINT_URL", "https://elsewhere.invalid")
    monkeypatch.chdir(tmp_path)
    pairs, result = small_plan()
    tracker = tracker_with(tmp_path / "results.csv", pairs)
    fake = FakeSky().install(monkeypatch)
    store = open_store(f"s3://{s3_bucket}/runs", endpoint_url=s3_env)
    monkeypatch.delenv("R2_ENDPOINT_URL")
    submit_shards("skypilot", list(result.shards)[:1], store=store, settings=RunSettings(), tracker_path=tracker, spot=True)
    (task, _, _), = fake.launched
    assert task.secrets["R2_ENDPOINT_URL"].get_secret_value() == s3_env


def test_a_hostile_model_name_reaches_no_shell_string(tmp_path, monkeypatch, secrets_env):
    marker = tmp_path / f"pwned-{uuid.uuid4().hex}"
    evil = f"x$(touch {marker})"
    pairs = [Pair(evil, "openai", "cifar10"), Pair("ViT-B-32", f"`touch {marker}`", "cifar10")]
    result = plan.plan_shards(
        pairs, models=ModelIndex(catalog.load_models()), datasets=catalog.load_datasets(),
        gpus=pricing.load_gpus(), prices=pricing.load_prices(),
    )
    template = skypilot_task.load_yaml(skypilot.TEMPLATE)
    fake = FakeSky().install(monkeypatch)
    store = FakeStore()
    submit_shards(
        "skypilot", list(result.shards), store=store, settings=RunSettings(),
        tracker_path=tracker_with(tmp_path / "r.csv", pairs), spot=True, render_dir=tmp_path / "render",
    )
    for task, _, _ in fake.launched:
        assert task.run == template["run"] and task.setup == template["setup"]
        assert "touch" not in task.name and all("touch" not in v for v in task.envs.values())
    for path in (tmp_path / "render").iterdir():
        assert "touch" not in path.read_text()
    assert any("touch" in data.decode() for data in store.objects.values())  # names live in the manifest only
    assert not marker.exists()


def test_missing_credentials_or_a_local_store_refuse_to_launch(tmp_path, monkeypatch):
    for name in skypilot_task.SECRET_NAMES:
        monkeypatch.delenv(name, raising=False)
    _, result = small_plan()
    with pytest.raises(BenchmarkError, match="AWS_ACCESS_KEY_ID"):
        submit_shards("skypilot", list(result.shards), store=FakeStore(), settings=RunSettings(), tracker_path=tmp_path / "r", spot=True)
    with pytest.raises(BenchmarkError, match="bucket store"):
        submit_shards("skypilot", list(result.shards), store=open_store(tmp_path), settings=RunSettings(), tracker_path=tmp_path / "r", spot=True)


def test_job_queue_moves_pairs_to_running_and_failed_and_leaves_success_to_sync(tmp_path, monkeypatch):
    from sky.jobs import ManagedJobStatus

    pairs = [Pair("m", "p", d) for d in ("cifar10", "mnist", "dtd", "pets", "stl10")]
    path = tracker_with(tmp_path / "results.csv", pairs)
    with open_tracker(path) as t:
        for i, pair in enumerate(pairs[:4]):
            t.update(pair, status="launched", job_id=str(i + 1), shard_id="s")
    fake = FakeSky().install(monkeypatch)
    fake.queue = [
        {"job_id": 1, "status": ManagedJobStatus.RECOVERING, "failure_reason": None},
        {"job_id": 2, "status": ManagedJobStatus.FAILED_SETUP, "failure_reason": "uv sync failed"},
        {"job_id": 3, "status": ManagedJobStatus.SUCCEEDED, "failure_reason": None},
        {"job_id": 4, "status": ManagedJobStatus.CANCELLED, "failure_reason": None},
    ]
    moved = status_summary(path)["queue_moved"]
    assert moved == {"running": 1, "failed": 2}
    state = Tracker.load(path)
    assert [state.get(p).status for p in pairs] == ["running", "failed", "launched", "failed", "pending"]
    assert state.get(pairs[1]).error == "job 2 FAILED_SETUP: uv sync failed"


def test_cli_dry_run_prints_the_plan_and_sends_nothing(tmp_path, monkeypatch):
    pairs, result, fake = project(tmp_path, monkeypatch)
    runner = CliRunner()
    out = runner.invoke(app, ["launch", "--dry-run", "--budget", "50", "--target-minutes", "10"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    for shard in result.shards:
        assert shard.shard_id in out.output
    assert "total" in out.output and "GPU-h" in out.output and "would launch" in out.output
    assert fake.launched == []
    assert (tmp_path / ".benchmark" / "plan.json").is_file()
    assert Tracker.load(tmp_path / "results.csv").select(["pending"]).__len__() == len(pairs)
    recorded = runner.invoke(app, ["plan", "--record", "--target-minutes", "10"], env={"COLUMNS": "200"})
    assert recorded.exit_code == 0, recorded.output
    state = Tracker.load(tmp_path / "results.csv")
    assert all(e.status == "planned" and e.shard_id and e.est_cost_usd > 0 for e in state)


def test_cli_launch_keeps_to_budget_and_asks_before_many_jobs(tmp_path, monkeypatch, s3_bucket):
    monkeypatch.setenv("HF_TOKEN", f"{SENTINEL}-hf")
    models = [("ViT-B-32", "openai"), ("ViT-L-14", "openai"), ("ViT-H-14", "laion2b_s32b_b79k"), ("ViT-bigG-14", "laion2b_s39b_b160k")]
    _, result, fake = project(tmp_path, monkeypatch, models=models)
    runner = CliRunner()
    args = ["launch", "--store", f"s3://{s3_bucket}/runs", "--target-minutes", "10"]
    refused = runner.invoke(app, args, input="n\n", env={"COLUMNS": "200"})
    assert refused.exit_code == 1 and fake.launched == []
    cheapest_two = sum(s.cost_spot for s in result.shards[:2])
    out = runner.invoke(app, args + ["--budget", f"{cheapest_two + 1e-6:.6f}", "--yes"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert len(fake.launched) == 2
    assert sum(s.cost_spot for s in result.shards[:2]) <= cheapest_two + 1e-6
    assert "left for later" in out.output
    assert SENTINEL not in out.output


def test_interactive_and_pool_commands_call_skypilot_with_autostop(tmp_path, monkeypatch, secrets_env):
    fake = FakeSky().install(monkeypatch)
    runner = CliRunner()
    up = runner.invoke(app, ["interactive", "up", "--cluster", "dev", "--idle-minutes", "15"])
    assert up.exit_code == 0, up.output
    kind, task, kw = fake.calls[0]
    assert kind == "launch" and kw == {"cluster_name": "dev", "idle_minutes_to_autostop": 15}
    assert task.secrets["HF_TOKEN"].get_secret_value() == f"{SENTINEL}-HF_TOKEN"
    assert "ssh dev" in up.output and "benchmark run" in up.output and SENTINEL not in up.output
    assert runner.invoke(app, ["interactive", "down", "--cluster", "dev"]).exit_code == 0
    assert fake.calls[1] == ("down", "dev")
    assert runner.invoke(app, ["pool", "up", "warm", "--workers", "2"]).exit_code == 0
    kind, task, name, kw = fake.calls[2]
    assert (kind, name, kw["workers"]) == ("pool_apply", "warm", 2) and task.setup
    assert runner.invoke(app, ["pool", "down", "warm"]).exit_code == 0
    assert fake.calls[3] == ("pool_down", "warm")


def test_job_launcher_maps_the_source_flags_onto_launch(tmp_path, monkeypatch):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "job_launcher.py"
    module_spec = importlib.util.spec_from_file_location("job_launcher", path)
    launcher = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(launcher)
    assert launcher.translate(["--batch-size", "20", "--budget-limit", "50.0", "--dry-run", "--", "--gpus", "L4"]) == [
        "launch", "--max-jobs", "20", "--budget", "50.0", "--dry-run", "--gpus", "L4",
    ]
    assert launcher.translate([]) == ["launch", "--max-jobs", "10"]
    _, _, fake = project(tmp_path, monkeypatch)
    with pytest.raises(SystemExit) as done:
        launcher.main(["--batch-size", "1", "--dry-run"])
    assert done.value.code == 0 and fake.launched == []


def test_job_queue_is_not_asked_when_nothing_runs_on_skypilot(tmp_path, monkeypatch):
    import sky

    def refuse(**kw):
        raise AssertionError("the queue was asked")

    monkeypatch.setattr(sky.jobs, "queue_v2", refuse)
    path = tracker_with(tmp_path / "results.csv", [Pair("m", "p", "cifar10"), Pair("m", "p", "mnist")])
    with open_tracker(path) as t:
        t.update(Pair("m", "p", "mnist"), status="launched", job_id="local")
    assert status_summary(path)["queue_moved"] == {}


def test_a_pool_plans_for_its_gpu_and_pays_setup_once_per_worker(tmp_path, monkeypatch):
    import json

    _, _, fake = project(tmp_path, monkeypatch)
    runner = CliRunner()
    plans = {}
    for pooled, extra in ((False, ["--gpus", "L4"]), (True, ["--pool", "warm"])):  # the pool's GPU is L4
        out = runner.invoke(app, ["launch", "--dry-run", *extra], env={"COLUMNS": "200"})
        assert out.exit_code == 0, out.output
        plans[pooled] = json.loads((tmp_path / ".benchmark" / "plan.json").read_text())
    assert {s["gpu"] for s in plans[True]["shards"]} == {pools.pool_gpu()}
    assert plans[True]["runtime_s"] < plans[False]["runtime_s"]
    assert fake.launched == []


def test_the_rendered_task_asks_for_what_the_plan_priced(secrets_env):
    from types import SimpleNamespace

    from openclip_benchmark.planning.pricing import Offer, PriceTable

    prices = PriceTable("test", "2026-01-01", (
        Offer("gcp", "g2-standard-16", "L4", 1, 16, price=1.15, spot_price=0.36, region="r"),
        Offer("gcp", "a3-highgpu-1g", "H100", 1, 26, price=11.06, spot_price=2.95, region="r"),
        Offer("lambda", "gpu_1x_h100_pcie", "H100", 1, 26, price=2.49, spot_price=None, region="r"),
    ))
    models = ModelIndex([
        SimpleNamespace(arch=a, pretrained="x", params=p, image_gflops=g, text_gflops=3.0, image_size=224)
        for a, p, g in (("Small", 150e6, 1.0), ("Big", 3e9, 300.0))  # Big needs more than an L4
    ])
    datasets = catalog.load_datasets()
    pairs = [Pair(m, "x", "cifar10") for m in ("Small", "Big")]
    result = plan.plan_shards(pairs, models=models, datasets=datasets, gpus=pricing.load_gpus(), prices=prices)
    template = skypilot_task.load_yaml(skypilot.TEMPLATE)
    seen = set()
    for shard in result.shards:
        task = skypilot_task.build_task(skypilot.render_task_config(template, job(shard), spot=True), {"MANIFEST_URL": "x"}, [])
        for r in task.resources:
            assert r.use_spot == shard.spot and r.cpus == f"{shard.offer.vcpus}+" and r.accelerators == {shard.gpu: 1}
        seen.add((shard.gpu, shard.spot, shard.offer.vcpus))
    assert seen == {("L4", True, 16), ("H100", False, 26)}  # the big model is cheaper on demand than on spot


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_budget_takes_later_shards_that_fit_and_a_refusal_names_the_cheapest(tmp_path, monkeypatch):
    """Plan order, skipping shards over the budget: a cheap shard after an expensive one is still launched."""
    _, result, fake = project(tmp_path, monkeypatch)
    cheapest = min(result.shards, key=lambda s: s.cost_spot)
    assert cheapest is not result.shards[0] and result.shards[0].cost_spot > cheapest.cost_spot
    runner = CliRunner()
    args = ["launch", "--dry-run", "--target-minutes", "10"]
    fits = runner.invoke(app, args + ["--budget", f"{cheapest.cost_spot + 1e-6:.6f}"], env={"COLUMNS": "200"})
    assert fits.exit_code == 0, fits.output
    assert "would launch 1 shard(s)" in fits.output
    assert "valid under SkyPilot's schema" in fits.output
    refused = runner.invoke(app, args + ["--budget", f"{cheapest.cost_spot / 2:.6f}"], env={"COLUMNS": "200"})
    assert refused.exit_code == 2
    assert f"the cheapest, {cheapest.shard_id}, costs ${cheapest.cost_spot:,.2f}" in refused.output
    assert fake.launched == []


@pytest.mark.parametrize("backend", ["skypilot", "local"])
def test_a_refused_launch_changes_no_file(tmp_path, monkeypatch, backend):
    _, _, fake = project(tmp_path, monkeypatch)
    runner = CliRunner()
    ok = runner.invoke(app, ["launch", "--dry-run", "--backend", backend, "--target-minutes", "10", "--budget", "50"])
    assert ok.exit_code == 0, ok.output
    before = _files(tmp_path)
    assert ".benchmark/plan.json" in before
    refused = runner.invoke(app, ["launch", "--budget", "0.0001", "--dry-run", "--backend", backend])
    assert refused.exit_code == 2 and _files(tmp_path) == before and fake.launched == []
    assert "no shard fits the budget of $0.0001: the cheapest" in refused.output


def test_a_dry_run_validates_every_task_and_an_invalid_one_writes_nothing(tmp_path, monkeypatch):
    _, _, fake = project(tmp_path, monkeypatch)
    bad = yaml.safe_load(skypilot.TEMPLATE.read_text())
    bad["resources"]["disk_size"] = "lots"
    broken = tmp_path / "broken" / "t.yaml"
    broken.parent.mkdir()
    broken.write_text(yaml.safe_dump(bad))
    monkeypatch.setattr(skypilot, "TEMPLATE", broken)
    before = _files(tmp_path)
    out = CliRunner().invoke(app, ["launch", "--dry-run", "--target-minutes", "10"])
    assert out.exit_code == 2 and "invalid SkyPilot task ocb-shard-" in out.output, out.output
    assert _files(tmp_path) == before and fake.launched == []


def test_plan_files_live_beside_the_tracker_not_the_current_folder(tmp_path, monkeypatch):
    pairs, _ = small_plan()
    tracker = tracker_with(tmp_path / "project" / "results.csv", pairs)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    out = CliRunner().invoke(app, ["plan", "--tracker", str(tracker), "--target-minutes", "10"])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "project" / ".benchmark" / "plan.json").is_file()
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_cancel_stops_the_jobs_of_a_shard_and_fails_its_pairs(tmp_path, monkeypatch):
    import sky

    pairs = [Pair("m", "p", d) for d in ("cifar10", "mnist", "dtd")]
    path = tracker_with(tmp_path / "results.csv", pairs)
    with open_tracker(path) as t:
        t.update(pairs[0], status="launched", job_id="7,8", shard_id="a")
        t.update(pairs[1], status="launched", job_id="9", shard_id="b")
        t.update(pairs[1], status="running")
        t.update(pairs[2], status="launched", job_id="local", shard_id="a")
    sent = []
    monkeypatch.setattr(sky.jobs, "cancel", lambda **kw: sent.append(kw) or ("cancel", None))
    monkeypatch.setattr(sky, "get", lambda request: None)
    out = CliRunner().invoke(app, ["cancel", "--tracker", str(path), "--shard", "a"])
    assert out.exit_code == 0, out.output
    assert sent == [{"job_ids": [7, 8]}] and "cancelled 2 job(s): 7, 8" in out.output
    state = Tracker.load(path)
    assert [state.get(p).status for p in pairs] == ["failed", "running", "launched"]
    assert "cancelled" in state.get(pairs[0]).error


def test_an_installed_wheel_renders_a_job_from_its_packaged_configs(tmp_path):
    """No checkout beside the package: configs/ must come from inside the wheel."""
    import shutil
    import subprocess
    import sys
    import zipfile

    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is needed to build the wheel")
    root = Path(__file__).resolve().parents[1]
    built = subprocess.run([uv, "build", "--wheel", "--offline", "-o", str(tmp_path / "dist")], cwd=root,
                           capture_output=True, text=True, timeout=HANG_S)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    probe = (
        "from openclip_benchmark.backends import skypilot as s, skypilot_task as t\n"
        "assert s.TEMPLATE.is_file() and t.CONFIGS.parent.name == 'openclip_benchmark', t.CONFIGS\n"
        "from test_launch_skypilot import job, small_plan\n"
        "shard = small_plan()[1].shards[0]\n"
        "task = t.build_task(s.render_task_config(t.load_yaml(s.TEMPLATE), job(shard), spot=True), {'MANIFEST_URL': 'x'}, [])\n"
        "print(task.name)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": f"{tmp_path / 'site'}:{Path(__file__).parent}"}
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=HANG_S, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().startswith("ocb-shard-")


def test_the_cli_offers_the_registrys_backends():
    from openclip_benchmark.backends import backend_names, get_backend

    assert backend_names() == ("local", "skypilot")
    assert [get_backend(n).name for n in backend_names()] == list(backend_names())
    with pytest.raises(BenchmarkError, match="unknown backend 'slurm'"):
        get_backend("slurm")
    help_text = CliRunner().invoke(app, ["launch", "--help"], env={"COLUMNS": "200"}).output
    assert f"--backend <{'|'.join(backend_names())}>" in help_text
    assert "skipped and later, cheaper ones that still fit are taken, up to --max-jobs" in " ".join(help_text.split())
