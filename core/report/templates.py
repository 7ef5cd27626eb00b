"""The report's jinja2 templates, kept as strings so the package needs no data files.

Rendered with ``autoescape=True`` (``render.py``): every value is HTML-escaped by jinja2, so user
text (group names, dataset paths, plan names, settings) can never become markup. Only the
template text itself is markup. Table rows are written on one line each, so a row reads as one
line in the file too.
"""

from __future__ import annotations

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1b1b1b;
 max-width:1000px;margin:0 auto;padding:16px 24px 40px;background:#fff}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
.meta{color:#555}.note{background:#fff8e1;border-left:4px solid #ffb300;padding:6px 10px;margin:8px 0}
.missing{background:#f5f5f5;border-left:4px solid #9e9e9e;padding:6px 10px;margin:8px 0}
.flag{color:#c62828}.warn{background:#ffebee;border-left:4px solid #c62828;padding:6px 10px;margin:8px 0}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#fafafa;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
table.kv th{width:220px}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
pre.explain{white-space:pre-wrap;background:#fafafa;border:1px solid #eee;padding:10px;overflow-x:auto}
.legend{margin:4px 0 8px}.legend span{display:inline-block;margin-right:14px;white-space:nowrap}
.legend i{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-1px;border:1px solid #0003}
svg{display:block;margin:6px 0 2px;max-width:100%;height:auto}svg text{font-family:inherit}
p.headline{font-size:16px}.caption{color:#555;font-size:12px;margin:0 0 12px}
nav a{margin-right:12px}footer{margin-top:36px;color:#777;font-size:12px;border-top:1px solid #ddd;padding-top:8px}
"""

# Shared pieces: an SVG chart from ``charts.Chart``, key-value tables, settings, legends, notes.
MACROS = """
{% macro shape(e) -%}
{% if e.kind == "rect" -%}
<rect x="{{ e.x|num }}" y="{{ e.y|num }}" width="{{ e.width|num }}" height="{{ e.height|num }}" fill="{{ e.fill }}"><title>{{ e.title }}</title></rect>
{%- elif e.kind == "text" -%}
<text {% if e.rotate %}transform="translate({{ e.x|num }} {{ e.y|num }}) rotate(-90)"{% else %}x="{{ e.x|num }}" y="{{ e.y|num }}"{% endif %} font-size="{{ e.size }}"
{%- if e.anchor %} text-anchor="{{ e.anchor }}"{% endif %}{% if e.fill %} fill="{{ e.fill }}" pointer-events="none"{% endif %}>
{%- if e.title %}<title>{{ e.title }}</title>{% endif %}{{ e.text }}</text>
{%- elif e.kind == "line" -%}
<line x1="{{ e.x1|num }}" x2="{{ e.x2|num }}" y1="{{ e.y1|num }}" y2="{{ e.y2|num }}" stroke="{{ e.stroke }}"
{%- if e.width %} stroke-width="{{ e.width }}"{% endif %}{% if e.dash %} stroke-dasharray="{{ e.dash }}"{% endif %}
{%- if e.css %} class="{{ e.css }}"{% endif %}{% if e.title %}><title>{{ e.title }}</title></line>{% else %}/>{% endif %}
{%- elif e.kind == "polyline" -%}
<polyline points="{{ e.points|points }}" fill="none" stroke="{{ e.stroke }}" stroke-width="2"
{%- if e.dash %} stroke-dasharray="{{ e.dash }}"{% endif %}><title>{{ e.title }}</title></polyline>
{%- elif e.kind == "circle" -%}
<circle cx="{{ e.cx|num }}" cy="{{ e.cy|num }}" r="{{ e.r }}" fill="{{ e.fill }}"><title>{{ e.title }}</title></circle>
{%- endif %}
{%- endmacro %}

{% macro svg(chart) -%}
<svg width="{{ chart.width|num }}" height="{{ chart.height|num }}" viewBox="0 0 {{ chart.width|num }} {{ chart.height|num }}" role="img" aria-label="{{ chart.label }}">
{%- for e in chart.shapes %}{{ shape(e) }}{% endfor -%}
</svg>
{%- endmacro %}

{% macro cell(value) -%}
{% if value.not_paper_budget %}<strong class="flag">Not the paper's budget.</strong> {% endif -%}
{% if value.code %}<code>{{ value.text }}</code>{% else %}{{ value.text }}{% endif %}
{%- endmacro %}

{% macro kv_table(rows) -%}
<table class="kv">{% for key, value in rows %}<tr><th>{{ key }}</th><td>{{ cell(value) }}</td></tr>{% endfor %}</table>
{%- endmacro %}

{% macro settings_table(s) -%}
{% if s.rows is none and s.text is none %}<p class="meta">No settings recorded.</p>
{%- elif s.rows is none %}<pre>{{ s.text }}</pre>
{%- else %}<table class="kv">{% for key, shown in s.rows %}<tr><th>{{ key }}</th><td><code>{{ shown }}</code></td></tr>{% endfor %}</table>
{%- endif %}
{%- endmacro %}

{% macro legend(items) -%}
<div class="legend">{% for name, color in items %}<span><i style="background:{{ color }}"></i>{{ name }}</span>{% endfor %}</div>
{%- endmacro %}

{% macro missing(text) %}<p class="missing">{{ text }}</p>{% endmacro %}

{% macro note(text) %}{% if text %}<p class="note">{{ text }}</p>{% endif %}{% endmacro %}
"""

# The stylesheet is template text (inside ``raw``), never a value: jinja2 would escape its quotes,
# and a <style> element does not decode entities.
PAGE = (
    """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>KnowMix report: {{ name }}</title><style>{% raw %}"""
    + CSS
    + """{% endraw %}</style></head>
<body>
<header><h1>KnowMix report: {{ name }}</h1>
<p class="meta">Project file <code>{{ name }}</code> &middot; generated {{ generated }} &middot; KnowMix {{ version }}</p>
<p class="meta">This report covers {{ covers }}.</p>
<nav><a href="#probe">Probe</a><a href="#breakdown">Breakdown</a><a href="#plan">Plan</a><a href="#training">Training</a><a href="#check">Check</a></nav></header>
{% include "probe.html" %}
{% include "breakdown.html" %}
{% include "plan.html" %}
{% include "training.html" %}
{% include "check.html" %}
<footer>Generated offline by KnowMix {{ version }} on {{ generated }}. This file needs no network: charts are inline SVG; hover a bar or point for its number.</footer>
</body></html>
"""
)

PROBE = """{% from "macros.html" import kv_table, settings_table %}
<section id="probe"><h2>Probe</h2>
{% if probe.unfinished %}
<p class="note">This probe is not finished: {{ probe.n_probed }} of {{ probe.n_total }} questions probed (the run {{ probe.why_unfinished }}). The numbers below cover only the probed questions. Run the same probe again to resume it; finished questions are kept.</p>
{% endif %}
{{ kv_table(probe.rows) }}
<h3>Probe settings</h3>
{{ settings_table(probe.settings) }}
</section>
"""

BREAKDOWN = """{% from "macros.html" import svg, legend, missing %}
{% macro count_cells(row) %}{% for n, share in row.cells %}<td class="n">{{ n }}</td><td class="n">{{ share }}</td>{% endfor %}<td class="n">{{ row.total }}</td>{% endmacro %}
<section id="breakdown"><h2>Category breakdown</h2>
{% if not bd.total %}
{{ missing("No question has been probed yet, so there is no breakdown. Run (or resume) the probe: knowmix probe, or the Probe page in the app.") }}
{% else %}
<p>{{ bd.total }} probed question{{ "s" if bd.total != 1 else "" }} in {{ bd.n_groups }} group{{ "s" if bd.n_groups != 1 else "" }}. HighlyKnown: the model always answers right (P(T=0) = 1); MaybeKnown: sometimes (0 &lt; P(T=0) &lt; 1); WeaklyKnown: only when sampling (P(T=0) = 0, P(T&gt;0) &gt; 0); Unknown: never.</p>
{{ legend(bd.legend) }}
<h3>All questions</h3>
{{ svg(bd.overall_chart) }}
<table><tr><th>group</th>{% for c in bd.categories %}<th colspan="2">{{ c }}</th>{% endfor %}<th>total</th></tr>
{% for row in bd.rows %}
<tr><td>{{ row.name }}</td>{{ count_cells(row) }}</tr>
{% endfor %}
<tr><th>all</th>{{ count_cells(bd.all) }}</tr></table>
<h3>Per group ({{ bd.n_groups }})</h3>
{% if bd.n_charted < bd.n_groups %}
<p class="caption">The chart shows the {{ bd.n_charted }} largest of {{ bd.n_groups }} groups; the table above lists all of them.</p>
{% endif %}
{{ svg(bd.group_chart) }}
<p class="caption">Each bar is one group, split by category (100%); the number on the right is the group's probed questions. Hover a segment for its count.</p>
<h3>Greedy accuracy P(T=0)</h3>
{% if bd.histogram %}
{{ svg(bd.histogram) }}
<p class="caption">Share of greedy answers that were right, per question, in 10 bins (the last holds 0.9 to 1.0 inclusive). 0 is WeaklyKnown or Unknown, 1 is HighlyKnown.
{%- if bd.p_missing %} {{ bd.p_missing }} question{{ "s have" if bd.p_missing != 1 else " has" }} no P(T=0) recorded and {{ "are" if bd.p_missing != 1 else "is" }} left out.{% endif %}</p>
{% else %}
{{ missing("No question has a P(T=0) recorded, so there is no histogram.") }}
{% endif %}
{% endif %}
</section>
"""

PLAN = """{% from "macros.html" import svg, legend, missing, note, kv_table, settings_table %}
<section id="plan"><h2>Plan</h2>
{% if plan is none %}
{{ missing(no_plan) }}
{% else %}
{{ note(plan.note) }}
{{ kv_table(plan.rows) }}
<h3>Plan settings</h3>
{{ settings_table(plan.settings) }}
<h3>Before and after</h3>
{{ legend(plan.legend) }}
{{ svg(plan.chart) }}
<table><tr><th>category</th>{% for label, _part in plan.parts %}<th colspan="2">{{ label }}</th>{% endfor %}</tr>
{% for cat in plan.categories %}
<tr><td>{{ cat }}</td>{% for _label, part in plan.parts %}<td class="n">{{ part.counts.get(cat, 0) }}</td><td class="n">{{ part.shares.get(cat, 0.0)|pct }}</td>{% endfor %}</tr>
{% endfor %}
<tr><th>total</th>{% for _label, part in plan.parts %}<td class="n">{{ part.total }}</td><td></td>{% endfor %}</tr></table>
{% if plan.warnings %}
<h3>Warnings</h3>
{% for w in plan.warnings %}<p class="warn">{{ w }}</p>{% endfor %}
{% endif %}
<h3>Why this plan</h3>
<pre class="explain">{{ plan.explain }}</pre>
{% endif %}
</section>
"""

TRAINING = """{% from "macros.html" import svg, legend, missing, note, kv_table, settings_table %}
<section id="training"><h2>Training</h2>
{% if train is none %}
{{ missing(no_training) }}
{% else %}
{{ note(train.note) }}
{{ kv_table(train.rows) }}
<h3>Training settings</h3>
{{ settings_table(train.settings) }}
{% if not train.has_metrics %}
{{ missing("No metrics recorded yet: the run has not finished its first training step. Start or resume it (knowmix train / knowmix resume) and make the report again.") }}
{% else %}
<h3>Training loss</h3>
{% if train.loss_chart %}
{{ svg(train.loss_chart) }}
<p class="caption">Loss per optimizer step{% if train.loss_bucket > 1 %}; each point averages {{ train.loss_bucket }} steps{% endif %}. The dashed line marks {{ train.point_words }}.</p>
{% else %}
{{ missing("No training loss recorded yet.") }}
{% endif %}
<h3>Dev exact match</h3>
{% if train.dev_chart %}
{{ svg(train.dev_chart) }}
<p class="caption">Exact match on the held-out dev split at each evaluation; {{ train.kept_words }} (dashed line).</p>
{% else %}
{{ missing("No evaluation yet: dev exact match is measured at the end of each epoch.") }}
{% endif %}
<h3>Train fit per category</h3>
{% if train.fit_chart %}
{{ legend(train.fit_legend) }}
{{ svg(train.fit_chart) }}
<p class="caption">Share of a sample of training examples of each category the model answers exactly (grey dashed: all categories). The paper found Unknown examples fitted much later than known ones, and fitting them lowers test accuracy.</p>
{% else %}
{{ missing("No train-fit measurement yet: it is taken at each evaluation.") }}
{% endif %}
{% endif %}
{% endif %}
</section>
"""

CHECK = """{% from "macros.html" import svg, legend, missing, note %}
<section id="check"><h2>What training did to the model's knowledge</h2>
{% if check.check is none %}
{{ missing(check.missing) }}
{% else %}
{% set c = check.check %}
{{ note(check.note) }}
<p class="meta">Check {{ c.id }} of training run {{ c.run }}: mix {{ c.mix }}, {{ c.stopping }}; the adapter of the {{ c.adapter }}, run with {{ c.backend }}. The same questions were asked of the base model (before) and of the model with the adapter (after).</p>
{% for s in c.splits %}
<h3>{{ s.title }}: {{ s.n }}</h3>
<p class="headline"><strong>{{ s.words.headline }}</strong></p>
{% if s.words.probe %}<p class="headline"><strong>{{ s.words.probe }}</strong></p>{% endif %}
{% if s.words.em %}<p>{{ s.words.em }}</p>{% endif %}
<p>{{ s.words.fixed }}{% if s.words.lost %} {{ s.words.lost }}{% endif %}</p>
{% if s.words.idk %}<p>{{ s.words.idk }}</p>{% endif %}
{{ legend(s.legend) }}
{{ svg(s.chart) }}
<p class="caption">One bar per category before training (from the first probe), coloured by the category after training.{% if c.greedy_only %} "not known at T=0": the model never answers right greedily after training (WeaklyKnown or Unknown; knowmix check --full tells them apart).{% endif %} Hover a segment for its count.</p>
<table><tr><th>before \\ after</th>{% for col in s.columns %}<th>{{ col }}</th>{% endfor %}<th>total</th><th>exact match before</th><th>exact match after</th></tr>
{% for row in s.matrix %}
<tr><td>{{ row.before }}</td>{% for n in row.cells %}<td class="n">{{ n }}</td>{% endfor %}<td class="n">{{ row.total }}</td><td class="n">{{ row.em_before }}</td><td class="n">{{ row.em_after }}</td></tr>
{% endfor %}
</table>
{% if s.errors %}
<p>The {{ s.n_errors }} new error{{ "s" if s.n_errors != 1 else "" }} by the answer: questions answered right before training and wrongly after it (the question alone, in the training format){% if s.more %} (the first {{ s.errors|length }}; {{ s.more }} more: knowmix check --json lists them all){% endif %}.</p>
<table class="errors"><tr><th>question</th><th>right answer</th><th>answer before</th><th>answer after</th><th>category before</th></tr>
{% for e in s.errors %}
<tr><td>{{ e.question }}</td><td>{{ e.gold }}</td><td>{{ e.before }}</td><td>{{ e.after }}</td><td>{{ e.category }}</td></tr>
{% endfor %}
</table>
{% endif %}
{% endfor %}
{% endif %}
{% if check.compare %}
<h3>Training runs side by side</h3>
<p>Every training run with a check, on the same questions: the paper's comparison (the recommended mix with early stopping against the natural mix trained to convergence) on this project's data.</p>
<table class="compare"><tr><th></th>{% for col in check.compare.columns %}<th>{{ col }}</th>{% endfor %}</tr>
{% for what, cells in check.compare.rows %}
<tr><th>{{ what }}</th>{% for v in cells %}<td>{{ v }}</td>{% endfor %}</tr>
{% endfor %}
</table>
{% endif %}
</section>
"""

TEMPLATES = {
    "macros.html": MACROS,
    "report.html": PAGE,
    "probe.html": PROBE,
    "breakdown.html": BREAKDOWN,
    "plan.html": PLAN,
    "training.html": TRAINING,
    "check.html": CHECK,
}
