"""The simulated hours of traffic: which images each hour sends, through the real
endpoint with capture on, and an hourly monitoring job after each hour.
"""

from __future__ import annotations

import logging
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ladis_core import store
from ladis_core.demo.options import ATTACK_NONE, DemoOptions
from ladis_core.demo.stages import _delete_downstream
from ladis_core.demo.summary import HourSummary, _Clock
from ladis_core.model.data import (
    ImageDataset,
)
from ladis_core.progress import ProgressCallback, report
from ladis_core.store import layout

log = logging.getLogger("ladis.demo")


def _hour_plan(options: DemoOptions, hour: int, pool_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(source indices (k,), adversarial mask (k,)) of the requests of ``hour``.

    Drawn from ``np.random.default_rng([seed, hour])`` only, so an hour always sends the
    same requests. Images are drawn without replacement within the hour (so a window
    holds no duplicate rows) as long as the pool is large enough."""
    # one generator per decision, so the count and the mask do not depend on the pool size
    count_rng, source_rng, mask_rng = (
        np.random.default_rng([options.seed, hour, k]) for k in range(3)
    )
    lo, hi = options.requests_per_hour
    count = int(count_rng.integers(lo, hi + 1))
    sources = source_rng.choice(pool_size, size=count, replace=count > pool_size)
    window = options.windows[hour]
    mask = np.zeros(count, dtype=bool)
    n_adv = int(round(window.share * count))
    if n_adv:
        mask[mask_rng.choice(count, size=n_adv, replace=False)] = True
    return sources.astype(np.int64), mask


def _traffic_resume_point(world: str, options: DemoOptions) -> int:
    """The first hour to replay. Hours whose job result exists are done; if steps were
    captured after the last finished hour (a run cut short mid-hour), the traffic and
    jobs are removed and replayed from the first hour."""
    from ladis_core import trials
    from ladis_core.monitoring.results import JobResult

    monitoring = layout.monitoring_uri(world, options.endpoint)
    done = 0
    last_step: int | None = None
    for hour in range(options.hours):
        uri = layout.results_uri(monitoring, options.job_id(hour))
        if not store.exists(uri):
            break
        job = JobResult.from_dict(store.read_json(uri), source=uri)
        last_step = job.last_step if job.last_step is not None else last_step
        done = hour + 1
    inference = layout.inference_trial_uri(world, options.endpoint)
    captured = trials.last_step(inference, mode="PREDICT")
    if captured == last_step:
        return done
    log.warning(
        "the traffic in %s stops mid-hour (last captured step %s, last monitored step %s): replaying the day",
        world,
        captured,
        last_step,
    )
    _delete_downstream(world, options.endpoint, keep_reference=True)
    return 0


def _traffic_stage(
    world: str,
    options: DemoOptions,
    pool: ImageDataset,
    adversarial: dict[tuple[str, float], np.ndarray],
    first_hour: int,
    device: str,
    clock: _Clock,
    progress: ProgressCallback | None,
) -> None:
    """Serve the model from the world with capture on, replay the hours from
    ``first_hour`` through it, and run the monitoring job after each hour."""
    from ladis_core.monitoring import run_job
    from ladis_core.monitoring.results import JobSettings
    from ladis_core.serving import invoke, start_server

    endpoint = options.endpoint
    reference = layout.reference_trial_uri(world, endpoint)
    inference = layout.inference_trial_uri(world, endpoint)
    monitoring = layout.monitoring_uri(world, endpoint)
    settings = JobSettings(
        n_samples=options.n_samples,
        n_repeats=options.n_repeats,
        alpha=options.alpha,
        n_permutations=options.n_permutations,
        seed=options.seed,
    )
    hours = options.hours
    with (
        tempfile.TemporaryDirectory(prefix="ladis-endpoint-") as cache,
        start_server(
            layout.model_uri(world, endpoint),
            capture_uri=inference,
            provenance_uri=layout.provenance_uri(world, endpoint),
            layers=options.capture_layers,
            device=device,
            cache_dir=cache,
        ) as server,
    ):
        for hour in range(first_hour, hours):
            window = options.windows[hour]
            job_id = options.job_id(hour)
            sources, mask = _hour_plan(options, hour, len(pool))
            started = time.perf_counter()
            report(
                progress,
                "traffic",
                hour,
                hours,
                f"hour {hour + 1}/{hours} ({job_id}): {window.describe()}",
            )

            def send(
                i: int, *, _sources=sources, _mask=mask, _window=window, _job_id=job_id
            ) -> int:
                source = int(_sources[i])
                attacked = bool(_mask[i])
                image = adversarial[_window.key][source] if attacked else pool.images[source]
                answer = invoke(
                    server.url,
                    image,
                    provenance={
                        "source_index": source,
                        "true_label": int(pool.labels[source]),
                        "attack": _window.attack if attacked else ATTACK_NONE,
                        "epsilon": float(_window.epsilon) if attacked else 0.0,
                        "hour": _job_id,
                    },
                )
                return int(answer["step"])

            with ThreadPoolExecutor(max_workers=options.concurrency) as pool_exec:
                for done, _step in enumerate(pool_exec.map(send, range(len(sources))), 1):
                    if done % 20 == 0 or done == len(sources):
                        report(progress, "requests", done, len(sources), f"hour {hour + 1}/{hours}")
            # every captured step and its provenance are in the world before the job runs
            server.served.capture.flush()
            server.flush()
            clock.add("traffic", started)

            started = time.perf_counter()
            report(progress, "monitor", hour, hours, f"job {job_id}")
            result = run_job(
                reference=reference,
                inference=inference,
                output=monitoring,
                at=options.job_time(hour),
                layers=list(options.monitor_layers),
                settings=settings,
                endpoint=endpoint,
            )
            rate = "n/a" if result.detection_rate is None else f"{result.detection_rate:.0f}%"
            report(
                progress,
                "monitor",
                hour + 1,
                hours,
                f"job {job_id}: {result.requests} requests, {window.describe()}, detection rate {rate}"
                + (" — INCIDENT" if result.incident else ""),
            )
            clock.add("monitor", started)
        report(progress, "traffic", hours, hours, "day replayed")


def _hour_summaries(world: str, options: DemoOptions) -> list[HourSummary]:
    from ladis_core.monitoring.results import JobResult

    monitoring = layout.monitoring_uri(world, options.endpoint)
    out = []
    for hour, window in enumerate(options.windows):
        job_id = options.job_id(hour)
        uri = layout.results_uri(monitoring, job_id)
        job = JobResult.from_dict(store.read_json(uri), source=uri)
        _, mask = _hour_plan(options, hour, 1)  # the count and mask do not depend on the pool
        out.append(
            HourSummary(
                hour=hour,
                job_id=job_id,
                story=window.describe(),
                attack=window.attack,
                epsilon=window.epsilon,
                share=window.share,
                requests=job.requests,
                adversarial_requests=int(mask.sum()),
                detection_rate=job.detection_rate,
                baseline_detection_rate=job.baseline_detection_rate,
                incident=job.incident,
                status=job.status,
                layer_rates={name: layer.detection_rate for name, layer in job.layers.items()},
            )
        )
    return out
