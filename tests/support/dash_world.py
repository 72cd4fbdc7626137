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
