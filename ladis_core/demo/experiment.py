"""The layer experiment: the detection rate of every captured layer on natural and
attacked traffic against the reference, with the clean baseline.
"""

from __future__ import annotations

import logging

import numpy as np

from ladis_core.demo.options import ATTACK_NONE, DemoOptions
from ladis_core.demo.summary import LayerExperiment
from ladis_core.errors import check
from ladis_core.model.labels import epsilon_label
from ladis_core.progress import ProgressCallback, report
from ladis_core.store import layout

log = logging.getLogger("ladis.demo")


def _experiment_stage(
    world: str, options: DemoOptions, device: str, progress: ProgressCallback | None
) -> LayerExperiment:
    """Detection rate per captured layer: the reference (natural validation data) against
    the natural traffic and against each attack in the traffic, plus the baseline.

    Rows come from the captured trials, grouped by the provenance of every request; an
    image sent several times is used once per comparison (duplicates would make two
    samples look more alike than independent draws)."""
    from ladis_core import stats, trials

    endpoint = options.endpoint
    reference_uri = layout.reference_trial_uri(world, endpoint)
    inference_uri = layout.inference_trial_uri(world, endpoint)
    names = trials.list_layers(reference_uri, mode="EVAL")
    report(progress, "experiment", 0, 1, f"{len(names)} layers")
    ref = trials.load_trial(reference_uri, mode="EVAL", layers=names, include_inputs=True)
    inf = trials.load_trial(
        inference_uri, mode="PREDICT", layers=names, include_inputs=True, progress=progress
    )
    provenance = trials.load_provenance(layout.provenance_uri(world, endpoint))
    check(bool(provenance), f"no provenance under {layout.provenance_uri(world, endpoint)}")

    input_name = "input"
    ref_layers = {input_name: ref.inputs.reshape(len(ref), -1), **ref.layers}  # type: ignore[union-attr]
    inf_layers = {input_name: inf.inputs.reshape(len(inf), -1), **inf.layers}  # type: ignore[union-attr]
    layer_names = [input_name, *names]

    groups: dict[str, list[int]] = {"natural": []}
    seen: dict[str, set[int]] = {"natural": set()}
    for row, step in enumerate(inf.steps.tolist()):
        record = provenance.get(int(step))
        if record is None:
            continue
        attack = str(record.get("attack", ATTACK_NONE))
        column = (
            "natural"
            if attack == ATTACK_NONE
            else f"{attack.upper()} ε={epsilon_label(float(record['epsilon']))}"
        )
        groups.setdefault(column, [])
        seen.setdefault(column, set())
        source = int(record.get("source_index", -1))
        if source in seen[column]:
            continue
        seen[column].add(source)
        groups[column].append(row)

    common = dict(
        n_samples=options.n_samples,
        n_repeats=options.experiment_repeats,
        alpha=options.alpha,
        n_permutations=options.n_permutations,
        seed=options.seed,
        device=device,
    )
    rates: dict[str, dict[str, float]] = {}
    combined: dict[str, float] = {}
    rows: dict[str, int] = {}
    columns = ["baseline"]
    baseline = stats.multi_layer_detection_rate(
        ref_layers, baseline=True, reference_classes=ref.predicted_class, **common
    )
    rates["baseline"], combined["baseline"], rows["baseline"] = (
        baseline.rates,
        baseline.combined.rate,
        len(ref) // 2,
    )
    ordered = ["natural", *sorted(c for c in groups if c != "natural")]
    for number, column in enumerate(ordered, 1):
        picked = np.asarray(groups[column], dtype=np.int64)
        report(progress, "experiment", number, len(ordered) + 1, f"{column}: {len(picked)} images")
        if len(picked) < options.n_samples:
            log.warning(
                "layer experiment: %s has %d distinct images (< n=%d); left out",
                column,
                len(picked),
                options.n_samples,
            )
            continue
        result = stats.multi_layer_detection_rate(
            ref_layers,
            {n: inf_layers[n][picked] for n in layer_names},
            reference_classes=ref.predicted_class,
            inference_classes=inf.predicted_class[picked],
            **common,
        )
        columns.append(column)
        rates[column], combined[column], rows[column] = (
            result.rates,
            result.combined.rate,
            len(picked),
        )
    report(progress, "experiment", 1, 1, "done")
    return LayerExperiment(
        layers=layer_names,
        dimensions={n: int(ref_layers[n].shape[1]) for n in layer_names},
        columns=columns,
        rates={c: {n: float(v) for n, v in rates[c].items()} for c in columns},
        combined={c: float(combined[c]) for c in columns},
        rows=rows,
        settings={k: v for k, v in common.items() if k != "device"}
        | {
            "class_matched": True,
            "kernel": "multi_rbf",
            "combination": "max-statistic",
            "reference": reference_uri,
            "inference": inference_uri,
        },
    )
