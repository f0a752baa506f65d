"""The per-student HTML feedback page of ``dlgrade batch``, and the hook that lets a hidden test
attach a plot to it.

A hidden test records named series with the ``figures`` fixture, for example the training
curve of the student's model next to the reference's::

    def test_training(student, reference, figures):
        losses = student.train(...)
        figures.series("training loss", "your model", losses)
        figures.series("training loss", "reference", reference.train(...))

Series are plain numbers (the worker already sends only plain data), kept per test while
the submission is graded, and drawn with matplotlib into the page as base64 PNGs. Nothing
here changes a score; a plot that cannot be drawn leaves a note instead.

The ``figures`` fixture itself is the grading plugin's (``autograder.plugin``); it returns
``recorded_figures(request.node.nodeid)``.
"""
from __future__ import annotations

import base64
import html
import io
import math

import numpy as np

from .results import Results
from .textsafe import escape_control

MAX_POINTS = 2000  # per series; longer ones are thinned evenly (a page, not a data dump)
MAX_SERIES = 8     # per plot

_recorded: dict[str, Figures] = {}


class Figures:
    """Named plots for one test; each plot holds labelled series of numbers."""

    def __init__(self):
        self.plots: dict[str, dict] = {}

    def series(self, plot: str, label: str, values, *, x=None, xlabel: str = "step",
               ylabel: str = "", logy: bool = False) -> None:
        ys = np.asarray(values, dtype=np.float64).ravel()
        xs = np.arange(len(ys), dtype=np.float64) if x is None else \
            np.asarray(x, dtype=np.float64).ravel()
        if len(xs) != len(ys):
            raise ValueError(f"series {label!r}: {len(xs)} x values for {len(ys)} y values")
        if len(ys) > MAX_POINTS:
            step = math.ceil(len(ys) / MAX_POINTS)
            xs, ys = xs[::step], ys[::step]
        entry = self.plots.setdefault(str(plot), {"xlabel": xlabel, "ylabel": ylabel,
                                                  "logy": bool(logy), "series": []})
        if len(entry["series"]) < MAX_SERIES:
            entry["series"].append({"label": str(label), "x": _finite_or_none(xs),
                                    "y": _finite_or_none(ys)})

    def to_json(self) -> dict:
        return self.plots


def _finite_or_none(values: np.ndarray) -> list:
    return [float(v) if math.isfinite(v) else None for v in values]


def recorded_figures(nodeid: str) -> Figures:
    """The Figures of one test of the submission being graded in this process."""
    return _recorded.setdefault(nodeid, Figures())


def take_recorded() -> dict[str, dict]:
    """Everything recorded since the last call, by test node id; clears the record."""
    taken = {nodeid: f.to_json() for nodeid, f in _recorded.items() if f.plots}
    _recorded.clear()
    return taken


# ---- the page ------------------------------------------------------------------------------

def plot_png(plot: dict, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.2), dpi=90)
    ax = fig.add_subplot()
    for series in plot["series"]:
        ys = [math.nan if v is None else v for v in series["y"]]
        ax.plot(series["x"], ys, label=series["label"], linewidth=1.4)
    if plot.get("logy"):
        ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(plot.get("xlabel", ""))
    ax.set_ylabel(plot.get("ylabel", ""))
    ax.grid(alpha=0.3)
    if len(plot["series"]) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _text(value) -> str:
    """Text for the page: HTML-escaped, and with control characters written out (the page is
    also read with ``cat`` and ``less``, where an escape sequence would act)."""
    return html.escape(escape_control(str(value)))


def _figures_html(plots: dict) -> str:
    parts = []
    for title, plot in plots.items():
        try:
            png = base64.b64encode(plot_png(plot, title)).decode()
        except Exception as exc:  # noqa: BLE001 - a missing plot must not lose the page
            parts.append(f'<p class="note">(plot "{_text(title)}" could not be drawn: '
                         f"{_text(type(exc).__name__)}: {_text(str(exc))})</p>")
            continue
        parts.append(f'<img alt="{_text(title)}" src="data:image/png;base64,{png}">')
    return "\n".join(parts)


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; }
h1 { font-size: 1.4rem; } .total { font-size: 1.2rem; font-weight: bold; }
table { border-collapse: collapse; width: 100%; margin: 1rem 0; }
td, th { border-bottom: 1px solid #ddd; padding: 0.3rem 0.5rem; text-align: left; }
td.pts { text-align: right; white-space: nowrap; }
.passed { color: #1a7f37; } .failed { color: #c62828; }
section { border-left: 4px solid #c62828; padding: 0.2rem 1rem; margin: 1rem 0; }
section.passed { border-color: #1a7f37; }
pre { background: #f6f8fa; padding: 0.6rem; overflow-x: auto; white-space: pre-wrap; }
.note { color: #666; font-size: 0.9rem; }
"""


def render_page(results: Results, figures: dict | None = None, *, title: str,
                subtitle: str = "", include_hidden: bool = False) -> str:
    """One self-contained HTML page: total, per-test outcome and message, plots.

    ``figures`` maps a test's number to its plots. Tests marked ``hidden`` are counted but not
    described unless asked.
    """
    figures = figures or {}
    tests = results.tests
    shown = [t for t in tests if include_hidden or t.visibility != "hidden"]
    hidden = [t for t in tests if t not in shown]
    max_score = results.max_score
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_text(title)}"
           f"</title><style>{STYLE}</style></head><body>",
           f"<h1>{_text(title)}</h1>"]
    if subtitle:
        out.append(f"<p class='note'>{_text(subtitle)}</p>")
    out.append(f"<p class='total'>Score: {results.score:g} / {max_score:g}</p>")
    if results.output:
        out.append(f"<pre>{_text(results.output)}</pre>")
    if shown:
        out.append("<table><tr><th>#</th><th>test</th><th>points</th></tr>")
        for t in shown:
            out.append(f"<tr><td>{_text(t.number)}</td>"
                       f"<td><a href='#t{_text(t.number)}'>"
                       f"{_text(t.name)}</a></td><td class='pts {t.status}'>"
                       f"{t.score:g} / {t.max_score:g}</td></tr>")
        out.append("</table>")
    for t in shown:
        out.append(f"<section class='{t.status}' id='t{_text(t.number)}'>"
                   f"<h3>{_text(t.number)}. {_text(t.name)} "
                   f"<span class='{t.status}'>{t.score:g} / {t.max_score:g}</span></h3>")
        if t.output:
            out.append(f"<pre>{_text(t.output)}</pre>")
        if t.number in figures:
            out.append(_figures_html(figures[t.number]))
        out.append("</section>")
    if hidden:
        earned = sum(t.score for t in hidden)
        possible = sum(t.max_score for t in hidden)
        out.append(f"<p class='note'>{len(hidden)} hidden test(s): {earned:g} / {possible:g} "
                   "points (not described here).</p>")
    out.append("</body></html>")
    return "\n".join(out)
