"""A small but real LADIS world for the dashboard tests.

Built with the demo's own pipeline (:func:`ladis_core.demo.build_world`, tiny preset):
the digits data set, a ResNet18 trained for one epoch, real PGD, traffic through the real
serving endpoint with the real smdebug capture, provenance, ``natural.npz`` and the real
hourly monitoring jobs, in a real local S3 bucket. The preset is shrunk further for speed
(8×8 images, 3 hours of 40 requests, n = 30, R = 20, B = 200; about 20 s here), and the
attack's ε is large so that the one attacked hour is an incident even for a model trained
this little: the dashboard, not the detector, is under test.
"""

from __future__ import annotations

from dataclasses import dataclass

from ladis_core.monitoring.results import JobResult
from ladis_core.store import layout

#: the tiny preset, made faster still (see the module docstring)
FAST = dict(
    image_size=8,
    epochs=1,
    hours=3,
    requests_per_hour=(40, 40),
    n_samples=30,
    experiment_repeats=5,
    small_epsilon=0.3,
    large_epsilon=0.5,
    pgd_steps=3,
    torch_threads=1,
)


@dataclass(frozen=True)
class DashWorld:
    uri: str
    endpoint: str
    jobs: tuple[JobResult, ...]

    @property
    def monitoring(self) -> str:
        return layout.monitoring_uri(self.uri, self.endpoint)


def build(world_uri: str) -> DashWorld:
    """Build the test world at ``world_uri`` (an empty bucket)."""
    from ladis_core import demo
    from ladis_core import monitoring as monitor

    options = demo.DemoOptions.tiny(**FAST)
    demo.build_world(world_uri, options=options)
    jobs = monitor.load_jobs(layout.monitoring_uri(world_uri, options.endpoint))
    return DashWorld(uri=world_uri, endpoint=options.endpoint, jobs=tuple(jobs))


def copy_world(source: DashWorld, target_uri: str) -> DashWorld:
    """A copy of ``source`` at ``target_uri`` (an empty bucket) whose job results point at
    the copy's own trials: tests that write (verdicts, saved jobs) or rewrite data use it,
    so the shared world stays as built."""
    from concurrent.futures import ThreadPoolExecutor

    from ladis_core import monitoring as monitor
    from ladis_core import store

    base = source.uri.rstrip("/") + "/"
    target = target_uri.rstrip("/") + "/"
    keys = [info.uri[len(base) :] for info in store.iter_objects(source.uri)]

    def copy(key: str) -> None:
        data = store.read_bytes(base + key)
        if key.startswith("monitoring/") and key.endswith(".json"):
            data = data.replace(base.encode(), target.encode())
        store.write_bytes(target + key, data)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(copy, keys))
    jobs = monitor.load_jobs(layout.monitoring_uri(target, source.endpoint))
    return DashWorld(uri=target, endpoint=source.endpoint, jobs=tuple(jobs))


#: a provenance ``attack`` value that markdown would turn into a link and a remote image
MARKDOWN_ATTACK = "[click](http://example.invalid) ![x](http://example.invalid/x.png)"


@dataclass(frozen=True)
class AccessWorld:
    """The world of the access tests (see :func:`build_access_world`)."""

    world: DashWorld
    #: the world the copy was made from: outside the copy's allowed sources
    outside_uri: str
    #: a job of the copy whose results.json points at trials in ``outside_uri``
    outside_job_id: str
    #: the latest incident of the copy and its top flagged step, whose provenance
    #: ``attack`` is :data:`MARKDOWN_ATTACK`
    incident_id: str
    markdown_step: int


def build_access_world(source: DashWorld, target_uri: str) -> AccessWorld:
    """:func:`copy_world` plus what the access tests look for: the latest incident's top
    flagged input gets :data:`MARKDOWN_ATTACK` as its recorded ``attack`` (a later
    provenance part wins), and a job a day before the others keeps the results of the
    source world's incident, whose trial URIs point outside the copy."""
    import json
    from datetime import timedelta

    from ladis_core import store
    from ladis_core.trials import load_provenance

    world = copy_world(source, target_uri)
    incident = next(j for j in reversed(world.jobs) if j.incident)
    step = incident.top_samples[0].step
    record = dict(load_provenance(layout.provenance_uri(source.uri, source.endpoint))[step])
    record["attack"] = MARKDOWN_ATTACK
    store.write_bytes(
        layout.join(layout.provenance_uri(world.uri, world.endpoint), "zzzz-markdown.jsonl"),
        (json.dumps(record) + "\n").encode(),
    )
    original = next(j for j in reversed(source.jobs) if j.incident)
    earlier = layout.parse_job_id(world.jobs[0].job_id) - timedelta(days=1)
    outside = json.loads(original.to_json())
    outside.update(job_id=layout.job_id_for(earlier), scheduled_at=earlier.isoformat())
    store.write_json(layout.results_uri(world.monitoring, outside["job_id"]), outside)
    from ladis_core import monitoring as monitor

    jobs = monitor.load_jobs(world.monitoring)
    return AccessWorld(
        world=DashWorld(uri=world.uri, endpoint=world.endpoint, jobs=tuple(jobs)),
        outside_uri=source.uri,
        outside_job_id=outside["job_id"],
        incident_id=incident.job_id,
        markdown_step=step,
    )
