"""The Jinja2 template of the HTML report (kept in Python so it ships with the package).

Autoescape is on: every ``{{ value }}`` is HTML-escaped; only values wrapped in
``Markup`` by the renderer (chart placeholders, plotly.js) go in verbatim.
"""

TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'nonce-{{ nonce }}'; style-src 'unsafe-inline'; img-src data: blob:; font-src data:">
<meta name="generator" content="LADIS {{ data.ladis_version }}">
<title>{{ title }}</title>
<style nonce="{{ nonce }}">
  :root { --ink:#1f2933; --muted:#6b7280; --line:#e5e7eb; --bad:#b91c1c; --ok:#15803d; --warn:#b45309; --accent:#1f4e9c; }
  * { box-sizing: border-box; }
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); margin: 0; background: #f8fafc; }
  header { background: #0f172a; color: #f8fafc; padding: 18px 32px; }
  header h1 { margin: 0 0 4px; font-size: 22px; }
  header .meta { color: #cbd5e1; font-size: 13px; }
  nav { padding: 8px 32px; background: #e2e8f0; font-size: 13px; }
  nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
  main { padding: 8px 32px 40px; max-width: 1400px; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px; margin: 18px 0; }
  h2 { font-size: 18px; margin: 0 0 10px; }
  h3 { font-size: 15px; margin: 16px 0 6px; }
  table { border-collapse: collapse; width: 100%; font-size: 13px; }
  th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
  th { background: #f1f5f9; font-weight: 600; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  .incident { color: var(--bad); font-weight: 600; }
  .ok { color: var(--ok); }
  .muted { color: var(--muted); }
  .badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; border: 1px solid currentColor; }
  .badge.confirmed { color: var(--bad); } .badge.dismissed { color: var(--ok); } .badge.needs-review { color: var(--warn); } .badge.none { color: var(--muted); }
  .cards { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 12px; }
  .card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 150px; }
  .card .big { font-size: 22px; font-weight: 700; }
  .grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
  @media (max-width: 900px) { .grid2 { grid-template-columns: 1fr; } }
  .chart { width: 100%; min-height: 200px; }
  img.px { width: 96px; height: auto; image-rendering: pixelated; border: 1px solid var(--line); background: #fff; }
  figure { margin: 0; display: inline-block; text-align: center; font-size: 11px; color: var(--muted); }
  .note { white-space: pre-wrap; overflow-wrap: anywhere; }
  pre { background: #f1f5f9; padding: 8px; border-radius: 4px; overflow-x: auto; font-size: 12px; }
  ul.notes li { margin: 4px 0; }
  footer { color: var(--muted); font-size: 12px; padding: 0 32px 24px; }
  .nodata { padding: 10px; background: #fef3c7; border-radius: 4px; }
</style>
</head>
<body>
<header>
  <h1>{{ title }}</h1>
  <div class="meta">Generated {{ data.generated_at }} by LADIS {{ data.ladis_version }}
  {% if data.range_start or data.range_end %} · range {{ data.range_start or "…" }} → {{ data.range_end or "…" }}{% endif %}
  · {{ jobs|length }} job{{ "" if jobs|length == 1 else "s" }}, {{ summary.incidents }} incident{{ "" if summary.incidents == 1 else "s" }}</div>
</header>
<nav>
  <a href="#summary">Summary</a><a href="#timeline">Timeline</a><a href="#layers">Layers</a>
  <a href="#samples">Flagged inputs</a>{% if embedding %}<a href="#embedding">t-SNE</a>{% endif %}
  <a href="#settings">Settings &amp; seeds</a><a href="#verdicts">Verdicts &amp; notes</a>
  {% if notes %}<a href="#data-notes">Data notes</a>{% endif %}
</nav>
<main>
<section id="summary">
  <h2>Summary</h2>
  <div class="cards">
    <div class="card"><div class="muted">Endpoint{{ "s" if data.endpoints|length > 1 else "" }}</div><div class="big">{{ data.endpoints|join(", ") }}</div></div>
    <div class="card"><div class="muted">Requests</div><div class="big">{{ summary.requests }}</div></div>
    <div class="card"><div class="muted">Incidents</div><div class="big {{ 'incident' if summary.incidents else 'ok' }}">{{ summary.incidents }} / {{ jobs|length }}</div></div>
    {% if jobs|length == 1 %}{% set job = jobs[0] %}
    <div class="card"><div class="muted">Window test p</div><div class="big {{ 'incident' if job.incident else '' }}">{{ job.window_p_value|num }} <span class="muted">{{ job.incident_rule.describe() }}</span></div></div>
    <div class="card"><div class="muted">Requests that look crafted</div><div class="big">{{ job|share }}</div></div>
    <div class="card"><div class="muted">Detection rate vs baseline</div><div class="big {{ 'incident' if job.incident else '' }}">{{ job.detection_rate|pct }} <span class="muted">vs {{ job.baseline_detection_rate|pct }}</span></div></div>
    <div class="card"><div class="muted">Verdict</div><div class="big">{% set v = latest[job.job_id] %}{% if v %}<span class="badge {{ v.verdict }}">{{ v.verdict }}</span>{% else %}<span class="badge none">no verdict yet</span>{% endif %}</div></div>
    {% endif %}
  </div>
  <table id="summary-table">
    <thead><tr><th>Job</th><th>Endpoint</th><th>Scheduled</th><th>Window (steps)</th><th class="num">Requests</th><th class="num">Window p</th><th class="num">Crafted share</th><th class="num">Detection rate</th><th class="num">Baseline</th><th class="num">Threshold</th><th>Status</th><th>Verdict</th></tr></thead>
    <tbody>
    {% for job in jobs %}{% set v = latest[job.job_id] %}
      <tr>
        <td>{{ job.job_id }}</td><td>{{ job.endpoint }}</td><td>{{ job.scheduled_at }}</td>
        <td>{% if job.first_step is not none %}{{ job.first_step }}–{{ job.last_step }}{% else %}<span class="muted">none</span>{% endif %}</td>
        <td class="num">{{ job.requests }}</td>
        <td class="num {{ 'incident' if job.incident else '' }}">{{ job.window_p_value|num }}</td>
        <td class="num">{{ job|share }}</td>
        <td class="num">{{ job.detection_rate|pct }}</td>
        <td class="num">{{ job.baseline_detection_rate|pct }}</td>
        <td class="num">{{ job.alert_threshold|pct }}</td>
        <td>{% if job.status != status_ok %}<span class="muted">not tested: {{ job.reason or job.status }}</span>{% elif job.incident %}<span class="incident">INCIDENT</span>{% else %}<span class="ok">normal</span>{% endif %}</td>
        <td>{% if v %}<span class="badge {{ v.verdict }}">{{ v.verdict }}</span> <span class="muted">by {{ v.analyst }}</span>{% else %}<span class="muted">none</span>{% endif %}</td>
      </tr>
    {% endfor %}
    </tbody>
  </table>
</section>

<section id="timeline">
  <h2>Timeline</h2>
  <p class="muted">Detection rate of {{ timeline_count }} monitoring job{{ "" if timeline_count == 1 else "s" }} around the incident, with the baseline (false-positive) rate, the alert threshold and the requests per window.</p>
  {{ timeline }}
</section>

<section id="layers">
  <h2>Per-layer detection rates</h2>
  {% if heatmap %}<h3>Layers over time</h3>{{ heatmap }}{% endif %}
  {% for detail in job_details %}{% set job = detail.job %}
    <h3>Job {{ job.job_id }}{% if job.incident %} <span class="incident">(incident)</span>{% endif %}</h3>
    {% if detail.share_text %}<p class="share">Window test p = {{ job.window_p_value|num }} ({{ job.incident_rule.describe() }}); {{ detail.share_text }}.
    Compared: {{ job.window_test.window_rows }} distinct requests{% if job.window_test.duplicates %} ({{ job.window_test.duplicates }} repeats tested once){% endif %} against {{ job.window_test.reference_rows }} reference rows.
    {% if job.baseline_range %}Baseline over {{ job.baseline_splits }} reference splits: {{ job.baseline_range[0]|pct }}–{{ job.baseline_range[1]|pct }}.{% endif %}</p>
    {% for warning in job.warnings %}<p class="muted">⚠ {{ warning }}</p>{% endfor %}
    {% if detail.classes %}<h4>Crafted share per predicted class</h4>{{ detail.classes }}{% endif %}{% endif %}
    <div class="grid2"><div>{{ detail.bars }}</div><div>{% if detail.pvalues %}{{ detail.pvalues }}{% else %}<p class="muted">No p-values recorded.</p>{% endif %}</div></div>
    <table class="layer-table">
      <thead><tr><th>Layer</th><th class="num">Dimension</th><th class="num">Detection rate</th><th class="num">Baseline</th><th class="num">Median p-value</th></tr></thead>
      <tbody>{% for name, layer in job.layers.items() %}
        <tr><td>{{ name }}</td><td class="num">{{ layer.dimension|num }}</td><td class="num">{{ layer.detection_rate|pct }}</td><td class="num">{{ layer.baseline_detection_rate|pct }}</td><td class="num">{{ layer.median_p_value|num }}</td></tr>
      {% endfor %}
        <tr><td><b>combined</b> ({{ job.combined_method }})</td><td></td><td class="num"><b>{{ job.detection_rate|pct }}</b></td><td class="num">{{ job.baseline_detection_rate|pct }}</td><td></td></tr>
      </tbody>
    </table>
  {% endfor %}
  {% if more_details %}<p class="muted">{{ more_details }} more job(s) are in the JSON export.</p>{% endif %}
</section>

<section id="samples">
  <h2>Most suspicious inputs</h2>
  {% if not samples %}
    <p class="muted">No flagged inputs were recorded for these jobs.</p>
  {% else %}
  <p class="muted">Ranked by per-sample score (smaller calibrated p-value = less like the natural reference).
  {% if samples_total > samples|length %}Showing {{ samples|length }} of {{ samples_total }}; all are in the JSON and CSV exports.{% endif %}
  Difference: input − original, amplified; red = brighter, blue = darker.</p>
  <table id="samples-table">
    <thead><tr><th class="num">#</th><th>Job</th><th class="num">Step</th><th class="num">Score</th><th class="num">p-value</th><th>Predicted</th><th>Input</th><th>Original</th><th>Difference</th><th class="num">L∞</th><th class="num">L2</th><th>Provenance</th></tr></thead>
    <tbody>
    {% for view in samples %}{% set s = view.sample %}
      <tr class="sample-row">
        <td class="num">{{ s.rank }}</td><td>{{ s.job_id }}</td><td class="num">{{ s.step }}</td>
        <td class="num">{{ s.score|num(4) }}</td><td class="num">{{ s.p_value|num(3) }}</td><td>{{ view.predicted }}</td>
        <td>{% if view.image %}<img class="px sample-image" src="{{ view.image }}" alt="input at step {{ s.step }}">{% else %}<span class="muted">not available</span>{% endif %}</td>
        <td>{% if view.original %}<figure><img class="px sample-original" src="{{ view.original }}" alt="original"><figcaption>{{ view.original_label }}</figcaption></figure>{% else %}<span class="muted">unknown</span>{% endif %}</td>
        <td>{% if view.difference %}<figure><img class="px sample-difference" src="{{ view.difference }}" alt="amplified difference"><figcaption>×{{ view.amplify|num(3) }}</figcaption></figure>{% else %}<span class="muted">–</span>{% endif %}</td>
        <td class="num">{% if view.size %}{{ view.size.linf|num(3) }}{% else %}–{% endif %}</td>
        <td class="num">{% if view.size %}{{ view.size.l2|num(3) }}{% else %}–{% endif %}</td>
        <td>{% if view.provenance %}{{ view.provenance }}{% else %}<span class="muted">not recorded</span>{% endif %}</td>
      </tr>
    {% endfor %}
    </tbody>
  </table>
  {% endif %}
</section>

{% if embedding %}
<section id="embedding">
  <h2>{{ embedding.data.method }} of layer {{ embedding.data.layer }}</h2>
  <p class="muted">Reference (natural) rows in grey, inference rows in blue, flagged inputs in red. A visual aid only: decisions come from the tests above.
  {% if embedding.data.details %}Settings: {% for k, v in embedding.data.details.items() %}{{ k }} = {{ v }}{{ ", " if not loop.last else "" }}{% endfor %}.{% endif %}</p>
  {{ embedding.chart }}
</section>
{% endif %}

<section id="settings">
  <h2>Settings and seeds</h2>
  <p class="muted">Everything needed to reproduce these numbers: the same trials, steps and settings (including the seed) give the same rates.</p>
  {% for group in settings %}
    <h3>{% if settings|length > 1 %}Jobs {% for j in group.jobs %}{{ j.job_id }}{{ ", " if not loop.last else "" }}{% endfor %}{% else %}All jobs{% endif %}</h3>
    <table class="settings-table"><tbody>
      {% for name, value in group.rows %}<tr><th>{{ name }}</th><td>{{ value }}</td></tr>{% endfor %}
    </tbody></table>
    <details><summary>as JSON</summary><pre>{{ group.json }}</pre></details>
  {% endfor %}
  <h3>Steps per job</h3>
  <table><thead><tr><th>Job</th><th>First step</th><th>Last step</th><th>Started</th><th>Finished</th></tr></thead><tbody>
  {% for job in jobs %}<tr><td>{{ job.job_id }}</td><td>{{ job.first_step|num }}</td><td>{{ job.last_step|num }}</td><td>{{ job.started_at }}</td><td>{{ job.finished_at }}</td></tr>{% endfor %}
  </tbody></table>
</section>

<section id="verdicts">
  <h2>Analyst verdicts and notes</h2>
  {% if not verdict_rows %}
    <p class="muted">No analyst has given a verdict on these jobs yet.</p>
  {% else %}
  <table id="verdicts-table">
    <thead><tr><th>Job</th><th>When (UTC)</th><th>Analyst</th><th>Verdict</th><th>Note</th></tr></thead>
    <tbody>
    {% for job, v in verdict_rows %}
      <tr><td>{{ job.job_id }}</td><td>{{ v.at }}</td><td>{{ v.analyst }}</td><td><span class="badge {{ v.verdict }}">{{ v.verdict }}</span></td><td class="note">{{ v.note }}</td></tr>
    {% endfor %}
    </tbody>
  </table>
  {% endif %}
</section>

{% if notes %}
<section id="data-notes">
  <h2>Data notes</h2>
  <ul class="notes">{% for note in notes %}<li class="nodata">{{ note }}</li>{% endfor %}</ul>
</section>
{% endif %}
</main>
<footer>
  {% if sources %}Results read from: {% for job_id, uri in sources %}{{ uri }}{{ "; " if not loop.last else "" }}{% endfor %}.<br>{% endif %}
  LADIS: detecting adversarial input distributions via layerwise statistics (kernel MMD two-sample tests).
</footer>
{% for chart_id, payload in charts %}
<script type="application/json" id="{{ chart_id }}-data" nonce="{{ nonce }}">{{ payload|safe }}</script>
{% endfor %}
<script nonce="{{ nonce }}">{{ plotly_js }}</script>
<script nonce="{{ nonce }}">
(function () {
  var config = {displaylogo: false, responsive: true};
  document.querySelectorAll("div.chart").forEach(function (div) {
    var source = document.getElementById(div.id + "-data");
    if (!source) { return; }
    try {
      var fig = JSON.parse(source.textContent);
      Plotly.newPlot(div, fig.data, fig.layout, config);
    } catch (err) {
      div.textContent = "This chart could not be drawn: " + err;
    }
  });
})();
</script>
</body>
</html>
"""
