"""The backend is data: each tracked pair records the backend that launched it, and status, polling and cancel ask
that backend. A third backend, registered at run time in a few lines, launches, polls and cancels through the same
use cases without SkyPilot being asked anything; older trackers without the column still route as before."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from openclip_benchmark import backends
from openclip_benchmark.backends import Submission, register
from openclip_benchmark.catalog import load_catalog
from openclip_benchmark.cli import app
from openclip_benchmark.core.errors import BenchmarkError
from openclip_benchmark.core.manifest import RunSettings
from openclip_benchmark.core.pair import Pair
from openclip_benchmark.pipeline.launch import PlanRequest, cancel, launch, status_summary
from openclip_benchmark.tracker import JobState, Tracker, open_tracker, parse_tracker, render_tracker
from test_launch_skypilot import FakeSky, small_plan, tracker_with


class ToyBackend:
    """A whole backend: its jobs are entries of a dict."""

    name = "toy"
    jobs: dict[str, str] = {}  # job id -> what the "cluster" says of it

    def pool_gpus(self, pool):
        return None

    def validate(self, jobs, context, dry_run):
        return [f"toy: {len(jobs)} job(s) would run"]

    def submit(self, jobs, context):
        done = Submission()
        for job in jobs:
            job_id = str(len(self.jobs) + 1)  # numeric, as SkyPilot's are
            self.jobs[job_id] = "running"
            done.kept += context.report([job.submitted(self.name, job_id)])
            done.launched.append((job, job_id))
        return done

    def poll(self, job_ids):
        return [JobState(self.name, i, self.jobs[i], "node lost" if self.jobs[i] == "failed" else "") for i in job_ids]

    def cancel(self, job_ids):
        return [JobState(self.name, i, "failed", "cancelled") for i in job_ids]


@pytest.fixture
def toy(monkeypatch):
    """The toy backend registered for this test only; SkyPilot's SDK refuses every call."""
    import sky

    monkeypatch.setattr(backends, "_REGISTRY", dict(backends._REGISTRY))
    register("toy", ToyBackend)
    monkeypatch.setattr(ToyBackend, "jobs", {})

    def refuse(*args, **kwargs):
        raise AssertionError("SkyPilot was asked")

    for name in ("launch", "queue_v2", "cancel"):
        monkeypatch.setattr(sky.jobs, name, refuse)
    monkeypatch.setattr(sky, "get", refuse)
    return ToyBackend


def test_a_third_backend_launches_polls_and_cancels_without_skypilot(tmp_path, monkeypatch, toy):
    monkeypatch.chdir(tmp_path)
    pairs, _ = small_plan()
    tracker = tracker_with(tmp_path / "results.csv", pairs)
    done = launch(tracker, load_catalog(), PlanRequest(target_minutes=10), backend="toy", budget=None, max_jobs=100,
                  dry_run=False, store_url=str(tmp_path / "store"), endpoint_url=None, settings=RunSettings())
    assert done.preview.notes == [f"toy: {len(done.preview.selected)} job(s) would run"]
    launched = done.submission.launched
    assert len(launched) == len(toy.jobs) >= 2
    state = Tracker.load(tracker)
    for job, job_id in launched:
        assert {(state.get(p).status, state.get(p).backend, state.get(p).job_id) for p in job.pairs} == {
            ("launched", "toy", job_id)}

    first, second = launched[0][1], launched[1][1]
    toy.jobs[second] = "failed"
    summary = status_summary(tracker)
    assert "queue_warning" not in summary
    assert summary["queue_moved"] == {"running": len(pairs) - len(launched[1][0].pairs), "failed": len(launched[1][0].pairs)}
    state = Tracker.load(tracker)
    assert {state.get(p).error for p in launched[1][0].pairs} == {f"job {second} node lost"}

    out = CliRunner().invoke(app, ["cancel", "--tracker", str(tracker), "--shard", launched[0][0].shard_id])
    assert out.exit_code == 0, out.output
    assert f"cancelled 1 job(s): {first}" in out.output
    state = Tracker.load(tracker)
    assert {(state.get(p).status, state.get(p).error) for p in launched[0][0].pairs} == {
        ("failed", f"job {first} cancelled")}


def test_status_and_cancel_route_by_the_recorded_backend(tmp_path, monkeypatch, toy):
    """Same numeric job id, three backends: each is asked about its own pairs only; a local pair never reaches
    SkyPilot; an old row without the column (numeric id) still goes to SkyPilot, as it always did."""
    ours, theirs, here, legacy, unknown = (Pair("m", "p", d) for d in ("cifar10", "mnist", "dtd", "pets", "stl10"))
    path = tracker_with(tmp_path / "results.csv", [ours, theirs, here, legacy, unknown])
    with open_tracker(path) as t:
        t.update(ours, status="launched", job_id="7", backend="toy", shard_id="a")
        t.update(theirs, status="launched", job_id="7", backend="skypilot", shard_id="a")
        t.update(here, status="launched", job_id="7", backend="local", shard_id="a")
        t.update(legacy, status="launched", job_id="8", shard_id="a")  # written before the column
        t.update(unknown, status="launched", job_id="7", backend="slurm", shard_id="a")
    toy.jobs["7"] = "running"
    fake = FakeSky().install(monkeypatch)
    from sky.jobs import ManagedJobStatus

    fake.queue = [{"job_id": 7, "status": ManagedJobStatus.FAILED, "failure_reason": "preempted"},
                  {"job_id": 8, "status": ManagedJobStatus.RUNNING, "failure_reason": None}]
    summary = status_summary(path)
    assert "unknown backend 'slurm'" in summary["queue_warning"]
    state = Tracker.load(path)
    assert [state.get(p).status for p in (ours, theirs, here, legacy, unknown)] == [
        "running", "failed", "launched", "running", "launched"]
    assert state.get(theirs).error == "job 7 FAILED: preempted"

    import sky

    sent = []
    monkeypatch.setattr(sky.jobs, "cancel", lambda **kw: sent.append(kw) or ("cancel", None))
    with pytest.raises(BenchmarkError, match="unknown backend 'slurm'"):
        cancel(path)
    assert sent == [{"job_ids": [8]}]  # the legacy row; the local one and toy's "7" were never SkyPilot's
    state = Tracker.load(path)
    assert [state.get(p).status for p in (ours, legacy, here, unknown)] == ["failed", "failed", "launched", "launched"]
    assert cancel(path, backend="toy") == []  # nothing of toy's is left to stop


def test_an_old_tracker_reads_and_keeps_the_backend_empty_until_a_launch_records_it():
    text = ("model,pretrained,dataset,language,task,preprocess,status,shard_id,job_id,attempts,result_key,error,"
            "est_runtime_s,est_cost_usd,est_gpu,observed_runtime_s,updated_at\n"
            "m,p,cifar10,en,zeroshot_classification,,launched,s,12,1,,,,,,,\n"
            "m,p,mnist,en,zeroshot_classification,,launched,s,local,1,,,,,,,\n"
            "m,p,dtd,en,zeroshot_classification,,launched,s,job-x,1,,,,,,,\n")
    entries = list(parse_tracker(text).values())
    assert [e.backend for e in entries] == ["", "", ""]
    assert sorted(e.launched_by for e in entries) == ["", "local", "skypilot"]  # today's guess, for these rows only
    again = parse_tracker(render_tracker(entries))
    assert [e.backend for e in again.values()] == ["", "", ""]  # a save writes no guess into the file
