"""The embedded demo world: a trained model, real attacks, a day of traffic, hourly jobs.

:func:`build_world` builds, in an S3 prefix or a local folder, everything the dashboard
shows, with the real pipeline (docs/product.md, "The embedded demo world")::

    data      scikit-learn digits (or an image folder), fixed seeded split
    train     torchvision ResNet18, weights → models/<endpoint>/
    dataset   the natural pool the traffic is drawn from → datasets/<endpoint>/natural.npz
    reference validation pass under the Debugger hook (EVAL) → trials/<endpoint>/reference
    attacks   PGD (L∞, random start) at a small and a larger ε, FGSM, on the natural pool
    traffic   simulated hours of requests through the real HTTP endpoint with capture on,
              each with provenance (X-Ladis-Provenance) → trials/<endpoint>/inference,
              trials/<endpoint>/provenance
    monitor   after every hour, a monitoring job scheduled at the end of that hour
              → monitoring/<endpoint>/<job-id>/results.json
    layers    the layer experiment (docs/product.md, "Why layers"): detection rate per captured layer,
              natural and attacked traffic against the reference, plus the clean baseline
              → experiments/<endpoint>/layers.json
    marker    demo/<endpoint>/world.json, written LAST: what was built, seeds, accuracy,
              attack success rates, per-hour and per-layer rates, timings

**Re-runs.** Each stage skips what the world already holds, so a build can be resumed;
see :mod:`ladis_core.demo.build`.

**Reproducibility.** Every random choice comes from the seed: the split, the weights
(:func:`ladis_core.model.training.seeded_model`), batches, PGD's random start, which pool
images each hour sends (``np.random.default_rng([seed, hour])``, so a resumed hour sends
what a full run would) and the statistics. The day is a fixed date
(:data:`DEMO_START`), so job ids are the same in every build.

Modules: :mod:`~ladis_core.demo.options` (what to build), :mod:`~ladis_core.demo.build`
(the order of the stages, re-runs), :mod:`~ladis_core.demo.stages` (data, model,
reference, attacks), :mod:`~ladis_core.demo.traffic` (the hours and their jobs),
:mod:`~ladis_core.demo.experiment` (the layer experiment),
:mod:`~ladis_core.demo.summary` and :mod:`~ladis_core.demo.locations` (the marker).
"""

from ladis_core.demo.build import build_world
from ladis_core.demo.locations import (
    MARKER_NAME,
    WORLD_FOLDERS,
    check_world,
    demo_uri,
    load_summary,
    marker_uri,
)
from ladis_core.demo.options import (
    ATTACK_NONE,
    DEFAULT_ENDPOINT,
    DEMO_START,
    RESIDUAL_BLOCKS,
    DemoOptions,
    TrafficWindow,
    default_story,
)
from ladis_core.demo.summary import HourSummary, LayerExperiment, WorldSummary

__all__ = [
    "ATTACK_NONE",
    "DEFAULT_ENDPOINT",
    "DEMO_START",
    "MARKER_NAME",
    "RESIDUAL_BLOCKS",
    "WORLD_FOLDERS",
    "DemoOptions",
    "HourSummary",
    "LayerExperiment",
    "TrafficWindow",
    "WorldSummary",
    "build_world",
    "check_world",
    "default_story",
    "demo_uri",
    "load_summary",
    "marker_uri",
]
