"""The comparison report: conformance and latency across backends, servers and hardware, from results files.

``write_report(rows, out_dir)`` writes ``report.md``, a self-contained ``report.html`` (plots inlined),
``results.csv`` (every row, flattened) and ``plots/*.png``. Given the rows of a previous run it also
lists regressions: a check that passed there and fails now, and a latency percentile whose 95%
confidence interval no longer overlaps the previous one.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.reporting import servers
from harness.reporting.latency import hardware_label, latency_rows, latency_stats, target_name, unstable_targets
from harness.results.schema import SCHEMA_VERSION

MATRIX_MAX_CLAUSES = 150  # beyond this the matrix shows suites instead of clauses
SUBJECT_LABELS = {"adapters": "this project's adapters", "smolagents": "smolagents' own classes"}
DEFINITIONS = [
    ("TTFT", "time to first token: from sending the request to the first streamed content chunk"),
    ("TPOT", "time per output token: (end-to-end - TTFT) / (output tokens - 1), per request"),
    ("ITL", "inter-token latency: every gap between successive content chunks, over all requests"),
    ("E2E", "end-to-end latency: from sending the request to the end of the stream"),
    ("tok/s", "output tokens / end-to-end latency, per request"),
    ("% of roofline", "1 / TPOT p50 as a share of the batch-1 decode ceiling: memory bandwidth / weight bytes "
                      "(every weight read once per token); bandwidth from a copy benchmark on CPU, the published "
                      "peak for known GPUs and Apple chips"),
    ("[low, high]", "95% confidence interval of the percentile: percentile bootstrap, 1000 resamples, seed 0 "
                    "(above 5,000 values the order-statistic interval the bootstrap converges to)"),
]

CASSETTES = Path("cassettes")  # read for the servers' recorded behaviour, when run from the project root


@dataclass
class _Doc:
    """The report as blocks, rendered once to markdown and once to HTML."""

    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text)))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def ul(self, items: Sequence[str]) -> None:
        if items:
            self.blocks.append(("ul", list(items)))

    def table(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """A table whose columns are every key of its rows, in first-seen order ("-" where a row lacks one)."""
        if rows:
            columns = list(dict.fromkeys(k for r in rows for k in r))
            self.blocks.append(("table", [{k: r.get(k, "-") for k in columns} for r in rows]))

    def img(self, path: Path, alt: str) -> None:
        self.blocks.append(("img", (path, alt)))

    def markdown(self, base: Path) -> str:
        from tabulate import tabulate

        out: list[str] = []
        for kind, value in self.blocks:
            if kind == "h":
                out.append("#" * value[0] + " " + value[1])
            elif kind == "p":
                out.append(value)
            elif kind == "ul":
                out.append("\n".join(f"- {item}" for item in value))
            elif kind == "table":
                out.append(tabulate([[_md_cell(v) for v in r.values()] for r in value],
                                    headers=list(value[0].keys()), tablefmt="github"))
            elif kind == "img":
                out.append(f"![{value[1]}]({value[0].relative_to(base).as_posix()})")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
               f"<style>{_CSS}</style></head><body>"]
        for kind, value in self.blocks:
            if kind == "h":
                out.append(f"<h{value[0]}>{_inline(value[1])}</h{value[0]}>")
            elif kind == "p":
                out.append(f"<p>{_inline(value)}</p>")
            elif kind == "ul":
                out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in value) + "</ul>")
            elif kind == "table":
                head = "".join(f"<th>{html.escape(str(k))}</th>" for k in value[0])
                body = "".join("<tr>" + "".join(f"<td{_cls(v)}>{html.escape(str(v))}</td>" for v in r.values())
                               + "</tr>" for r in value)
                out.append(f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
                           f"</table></div>")
            elif kind == "img":
                data = base64.b64encode(value[0].read_bytes()).decode()
                out.append(f"<figure><img alt='{html.escape(value[1])}' src='data:image/png;base64,{data}'>"
                           f"<figcaption>{html.escape(value[1])}</figcaption></figure>")
        out.append("</body></html>")
        return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1600px;margin:2em auto;padding:0 1em;
color:#1f2328;line-height:1.45}
h1{border-bottom:2px solid #d0d7de;padding-bottom:.3em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;
margin-top:2em}
.scroll{overflow-x:auto;margin:1em 0}table{border-collapse:collapse;font-size:12px}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top;white-space:nowrap}
th{background:#f6f8fa}
tbody tr:nth-child(even){background:#fafbfc}td.bad{color:#b00020;font-weight:600}td.good{color:#116329}
code{background:#f6f8fa;padding:0 3px;border-radius:3px;font-size:90%}
figure{margin:1.5em 0}img{max-width:100%;border:1px solid #d0d7de}figcaption{color:#57606a;font-size:13px}
"""


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _inline(text: str) -> str:
    """Markdown's `code` and **bold** as HTML, everything else escaped."""
    escaped = html.escape(text)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


_FAILED_CELL = re.compile(r"^\d+ / [1-9]\d* / \d+$")  # passed / failed / skipped with failures


def _cls(value: Any) -> str:
    text = str(value)
    return " class='bad'" if text.startswith("REGRESSION") or _FAILED_CELL.match(text) else ""


# -- sections -----------------------------------------------------------------------------------


def _hardware_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        label = hardware_label(row)
        counts[label] += 1
        if label not in seen:
            hw = row.get("hardware") or {}
            seen[label] = {"hardware": label, "kind": hw.get("kind", "-"), "CPU": hw.get("cpu_model", "-"),
                           "cores": hw.get("cpu_cores", "-"), "memory GiB": hw.get("memory_gb", "-"),
                           "GPU": (f"{hw['gpu_name']} ({hw.get('gpu_memory_gb')} GiB)" if hw.get("gpu_name")
                                   else "-"),
                           "Apple chip": hw.get("apple_chip") or "-", "OS": hw.get("os", "-"),
                           "runs": set()}
        seen[label]["runs"].add(str(row.get("run")))
    return [{**{k: v for k, v in h.items() if k != "runs"}, "rows": counts[label], "runs": ", ".join(sorted(h["runs"]))}
            for label, h in seen.items()]


BACKEND_INDEPENDENT = "backend-independent"


def counted_once_when_independent(checks: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The check rows as the report counts them: a passed check that reached no backend's wire or engine
    (``extra.backend_reached`` false: a parsing helper, a refusal before sending) judged shared code, so it
    is one row under ``backend-independent``, not one per backend and message form; every other row as is."""
    out: list[Mapping[str, Any]] = []
    seen: set[tuple[str, ...]] = set()
    for row in checks:
        extra = row.get("extra") or {}
        if row.get("outcome") != "passed" or extra.get("backend_reached") is not False:
            out.append(row)
            continue
        check = str(row.get("clause")).replace("-smolagents_types", "")
        key = (hardware_label(row), str(row.get("subject")), str(row.get("mode")), str(row.get("suite")), check)
        if key not in seen:
            seen.add(key)
            out.append({**row, "backend": BACKEND_INDEPENDENT, "server": None, "target": None, "clause": check})
    return out


def _conformance(doc: _Doc, checks: Sequence[Mapping[str, Any]], matrix: tuple[Path, str] | None) -> None:
    by_subject: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in counted_once_when_independent(checks):
        by_subject[str(row.get("subject"))].append(row)
    several_hw = len({hardware_label(r) for r in checks}) > 1
    for subject in sorted(by_subject, key=lambda s: (s != "adapters", s)):
        rows = by_subject[subject]
        doc.h(2, f"Conformance: {subject} ({SUBJECT_LABELS.get(subject, subject)})")
        doc.p("Each cell: passed / failed / skipped checks. One line per mode and target, never summed across "
              "them; in record and live mode the checks a stand-in answered (recorded-reply responder, fault "
              "injector, or nothing sent) are client-side checks of the model under test, on their own line "
              "apart from the target's verdict. A passed check counts for a backend only when it reached that "
              f"backend's wire or engine; one that reached none is counted once, on the {BACKEND_INDEPENDENT} "
              "line (a failure always stays with its backend).")
        suites = sorted({str(r["suite"]) for r in rows})
        counts: dict[tuple[str, ...], dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(
            lambda: {"passed": 0, "failed": 0, "skipped": 0}))
        for r in rows:
            key: tuple[str, ...] = (hardware_label(r),) if several_hw else ()
            key += (str(r["backend"]), str(r.get("server") or "-"), str(r.get("mode") or "-"),
                    str(r.get("target") or "-"), _checks_of(r))
            outcome = str(r.get("outcome"))
            if outcome in ("passed", "failed", "skipped"):
                counts[key][str(r["suite"])][outcome] += 1
        table = []
        for key in counts:
            line: dict[str, Any] = {}
            if several_hw:
                line["hardware"] = key[0]
            line["backend"], line["server"], line["mode"], line["target"], line["checks"] = key[-5:]
            total = {"passed": 0, "failed": 0, "skipped": 0}
            for suite in suites:
                c = counts[key].get(suite)
                line[suite] = f"{c['passed']} / {c['failed']} / {c['skipped']}" if c else "-"
                for k in total:
                    total[k] += c[k] if c else 0
            line["total"] = f"{total['passed']} / {total['failed']} / {total['skipped']}"
            table.append(line)
        doc.table(table)
        if subject == "adapters" and matrix:
            doc.img(*matrix)
        failed = [r for r in rows if r.get("outcome") == "failed"]
        if failed:
            doc.h(3, "Findings about smolagents" if subject == "smolagents" else "Failures")
            doc.p("Each check with what it raised, and the backends where it did.")
            doc.ul(_grouped((f"{r['suite']}::{r['clause']}", _excerpt(str(r.get("message") or "failed")), _where(r))
                            for r in failed))
        observed = [(f"{r['suite']}::{r['clause']}", str(o), _where(r))
                    for r in rows for o in r.get("observations") or []]
        if observed:
            doc.h(3, "Observations about the backends")
            doc.p("What a backend returned that the contract had to correct (not failures).")
            doc.ul(_grouped(observed))
        # one line per reason, naming every backend it was given on: a reason such as "a fault of bedrock
        # only" holds for most backends, and one line per backend repeated it for each of them
        skipped: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for r in rows:
            if r.get("outcome") == "skipped":
                skipped[str(r.get("message") or "skipped").removeprefix("Skipped: ")][_where(r)] += 1
        if skipped:
            doc.h(3, "Skipped")
            doc.p("Each reason, with the backends it was given on and how many checks there.")
            doc.ul([f"{why} **on** " + ", ".join(f"{b} ({n})" for b, n in backends.items())
                    for why, backends in sorted(skipped.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))])
    _servers_compared(doc, checks)


def _checks_of(row: Mapping[str, Any]) -> str:
    """Whose verdict a check row is: the target's (it or its cassette answered), or a client-side check."""
    from harness.plugin.answers import client_side

    if row.get("mode") in ("live", "record") and client_side(row.get("answered_by")):
        return "client-side"
    return "target"


def who_answered(checks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Check rows counted per mode, target, endpoint, model id and backend, by who answered them (``by <source>``)."""
    from harness.plugin.answers import SOURCES

    counts: dict[tuple[str, ...], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in checks:
        key = (str(r.get("mode") or "-"), str(r.get("target") or "-"), str(r.get("endpoint") or "-"),
               str(r.get("model") or "-"), str(r["backend"]), str(r.get("subject")))
        counts[key][str(r.get("answered_by") or "undeclared")] += 1
    sources = [s for s in [*SOURCES, "undeclared"] if any(s in c for c in counts.values())]
    return [{"mode": k[0], "target": k[1], "endpoint": k[2], "model": k[3], "backend": k[4], "subject": k[5],
             **{f"by {s}": c.get(s, 0) for s in sources}} for k, c in sorted(counts.items())]


def _levels(doc: _Doc, checks: Sequence[Mapping[str, Any]], plots: Sequence[tuple[Path, str]] = ()) -> None:
    """The verdict per subject and level, smolagents' MUST failures, which backend conforms to which clause
    (table and plot), and the deliberate differences from smolagents (rows with clause ids)."""
    from harness.reporting.interop import deliberate_differences, must_failures
    from harness.reporting.levels import clause_matrix, level_headline

    headline = level_headline(checks)
    if not headline:
        return
    doc.h(2, "Verdict by level")
    doc.p("Share of clauses passed per backend, per subject and level (MUST: the documented smolagents contract; "
          "SHOULD: the wire specifications and real agents; STRICT: this project's stricter choices; "
          "docs/contract.md lists every clause). At a level a clause is judged by the checks graded at that level "
          "(what `pytest suites --level=...` certifies): failed if one of them failed; clauses only skipped are "
          "left out.")
    doc.table(headline)
    breaks, unjudged = must_failures(checks)
    if any(r.get("subject") == "smolagents" for r in checks):
        doc.h(3, f"MUST failures of smolagents' classes: {len(breaks)}")
        doc.p("Each failure of a check graded MUST, by clause and failure, with the backends it failed on and a "
              "one-line reproduction generated from the failing case: a `python -c` line with smolagents' class, "
              "its settings and the call (an HTTP backend's line reaches the endpoint in its settings: a running "
              "server, unless the failure comes before the request), else the `pytest` line of the case.")
        doc.table(breaks)
        if unjudged:
            doc.p(f"Not counted ({len(unjudged)}): MUST checks that failed without judging their clause, each with "
                  "why: in replay because smolagents sent a request other than the recorded one (valid or not, the "
                  "recorded answer is not its answer; a live run, `--mode live`, judges them), or because the "
                  "harness could not prove that the class's requests are captured. The verdict by level and the "
                  "clause matrices count them as skipped.")
            doc.table(unjudged)
    for subject in sorted({str(r["subject"]) for r in headline}, key=lambda s: (s != "adapters", s)):
        doc.h(3, f"Clauses x backends: {subject}")
        doc.table(clause_matrix(checks, subject))
        for path, alt in plots:
            if path.name == f"clause_matrix_{subject}.png":
                doc.img(path, alt)
    registry = _registry()
    if registry:
        doc.h(3, "Deliberate differences from smolagents")
        doc.p("The STRICT clauses: where this project asks more than the documented contract, each with its reason, "
              "and how smolagents' own classes fare on it (backends whose verdict is fail, of those judged).")
        doc.table(deliberate_differences(registry, checks))


REGISTRY = Path("suites/clauses.yaml")  # the clause registry, read when run from the project root


def _registry() -> dict[str, Any]:
    from harness.contract.errors import HarnessError
    from harness.plugin.clauses import load_registry

    if not REGISTRY.is_file():
        return {}
    try:
        return dict(load_registry(REGISTRY))
    except HarnessError:
        return {}


def _raw_behaviour(doc: _Doc, checks: Sequence[Mapping[str, Any]]) -> None:
    """What the backends do themselves, before any adapter corrects it (harness.reporting.interop)."""
    from harness.reporting.interop import raw_behaviour

    table, columns = raw_behaviour(checks, CASSETTES if CASSETTES.is_dir() else None)
    if not columns:
        return
    doc.h(2, "What the backends do themselves")
    doc.p("Each behaviour measured from what came over the wire before any adapter corrected it: the recorded "
          "answers of every HTTP backend per server (`cassettes/<server>/<backend>`; azure and bedrock are derived "
          "from the local servers' recordings), and each local engine's own text as its live stop checks saw it. "
          "Cell: answers that meet the behaviour, of those it applies to (- none applied). Interop: the share of "
          "backends whose raw behaviour already meets the clause everywhere it applied.")
    doc.table(table)


def _servers_compared(doc: _Doc, checks: Sequence[Mapping[str, Any]]) -> None:
    """The same suites replayed from each local server's recordings, side by side (harness.reporting.servers)."""
    names = servers.servers_in(checks)
    if len(names) < 2:
        return
    doc.h(2, "Servers compared")
    doc.p(f"The same suites, replayed from what each server answered ({', '.join(names)}), over every HTTP "
          "backend (azure and bedrock are derived from each server's recordings). Each cell: passed / failed / "
          "skipped checks.")
    doc.table(servers.suite_table(checks, names))
    facts = servers.wire_facts(CASSETTES, names) if CASSETTES.is_dir() else []
    if facts:
        doc.p(f"What each server sent, read from its recorded `{servers.WIRE_BACKEND}` cassettes:")
        doc.table(facts)
    doc.h(3, "Observations that differ between the servers")
    differing = servers.differing_observations(checks, names)
    if differing:
        doc.ul(differing)
    else:
        doc.p("None: every server needed the same corrections.")


def _where(row: Mapping[str, Any]) -> str:
    server = row.get("server")
    return f"{row['backend']} ({server})" if server else str(row["backend"])


FINDING_CHARS = 300  # a failure's message in the report; results.csv keeps it whole


def _excerpt(message: str) -> str:
    text = " ".join(message.split())
    return text if len(text) <= FINDING_CHARS else text[:FINDING_CHARS] + " [...]"


def _grouped(items: Iterable[tuple[str, str, str]]) -> list[str]:
    """One line per (check, message), naming every backend it was seen on."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for check, message, backend in items:
        if backend not in groups[(check, message)]:
            groups[(check, message)].append(backend)
    return [f"`{check}` on {', '.join(backends)}: {message}" for (check, message), backends in groups.items()]


def _ours_vs_smolagents(checks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    tally: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for r in checks:
        if r.get("outcome") in ("passed", "failed"):
            cell = tally[_where(r)][str(r.get("subject"))]
            cell[0 if r["outcome"] == "passed" else 1] += 1
    out = []
    for backend, subjects in tally.items():
        line: dict[str, Any] = {"backend": backend}
        for subject in ("adapters", "smolagents"):
            passed, failed = subjects.get(subject, [0, 0])
            line[f"{subject} passed"] = passed
            line[f"{subject} failed"] = failed
            line[f"{subject} pass rate"] = f"{100 * passed / (passed + failed):.0f}%" if passed + failed else "-"
        out.append(line)
    return out


def regressions(rows: Sequence[Mapping[str, Any]], previous: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Checks that went from pass to fail, and latency percentiles whose intervals no longer overlap."""
    def key(r: Mapping[str, Any]) -> tuple[str, ...]:
        return (hardware_label(r), str(r.get("backend")), str(r.get("server")), str(r.get("mode")),
                str(r.get("target")), str(r.get("subject")), str(r.get("suite")), str(r.get("clause")))

    before = {key(r): r.get("outcome") for r in previous if r.get("kind") == "check"}
    out: list[dict[str, Any]] = []
    for r in rows:
        if r.get("kind") == "check" and r.get("outcome") == "failed" and before.get(key(r)) == "passed":
            out.append({"change": "REGRESSION: passed -> failed", "hardware": key(r)[0], "what": _where(r),
                        "detail": f"{r.get('subject')} {r.get('suite')}::{r.get('clause')}: {r.get('message')}"})
    now = {(s["hardware"], s["target"]): s for s in latency_stats(rows)}
    then = {(s["hardware"], s["target"]): s for s in latency_stats(previous)}
    for k in sorted(set(now) & set(then)):
        for metric, name in (("ttft_s", "TTFT"), ("tpot_s", "TPOT")):
            a, b = then[k].get(metric), now[k].get(metric)
            if not a or not b:
                continue
            for q in (50, 90):
                if a[q].overlaps(b[q]):
                    continue
                slower = b[q].value > a[q].value
                out.append({"change": f"{'REGRESSION: slower' if slower else 'faster'} {name} p{q}",
                            "hardware": k[0], "what": k[1],
                            "detail": f"{a[q].format()} ms -> {b[q].format()} ms (95% CIs do not overlap)"})
    return out


# -- plots --------------------------------------------------------------------------------------


def _plots(out_dir: Path, rows: Sequence[Mapping[str, Any]], checks: Sequence[Mapping[str, Any]]) -> list[
        tuple[Path, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    plots: list[tuple[Path, str]] = []
    plot_dir = out_dir / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)

    samples: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get("kind") == "sample" and r.get("suite") == "bench-latency" and r.get("outcome") == "ok" \
                and not r.get("warmup"):
            key = (target_name(r), hardware_label(r))
            for metric in ("ttft_s", "tpot_s"):
                if r.get(metric) is not None:
                    samples[key][metric].append(1000 * r[metric])
    for metric, name in (("ttft_s", "time to first token"), ("tpot_s", "time per output token")):
        keys = [k for k in sorted(samples) if samples[k].get(metric)]
        if not keys:
            continue
        fig, ax = plt.subplots(figsize=(10, 0.55 * len(keys) + 1.6))
        hardware = sorted({k[1] for k in keys})
        colours = plt.get_cmap("tab10")
        box = ax.boxplot([samples[k][metric] for k in keys], vert=False, patch_artist=True, widths=0.6,
                         flierprops={"markersize": 2, "alpha": 0.4})
        for patch, k in zip(box["boxes"], keys):
            patch.set_facecolor(colours(hardware.index(k[1]) % 10))
            patch.set_alpha(0.6)
        ax.set_yticks(range(1, len(keys) + 1), [f"{t}\n{h}" if len(hardware) > 1 else t for t, h in keys],
                      fontsize=8)
        ax.invert_yaxis()  # top to bottom in the tables' order
        ax.set_xlabel(f"{name} (ms)")
        everything = [v for k in keys for v in samples[k][metric] if v > 0]
        if everything and max(everything) / min(everything) > 20:  # several orders of magnitude: log scale
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_title(f"{name.capitalize()} per target and hardware (measured requests, warm-up excluded)")
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        path = plot_dir / f"latency_{metric[:-2]}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        plots.append((path, f"Distribution of {name} per target and hardware"))

    adapters = [r for r in checks if r.get("subject") == "adapters"]
    if adapters:
        backends = list(dict.fromkeys(_where(r) for r in adapters))
        clauses = sorted({f"{r['suite']}::{r['clause']}" for r in adapters})
        by_suite = len(clauses) > MATRIX_MAX_CLAUSES  # too many rows to read: one row per suite, as a pass rate
        labels = sorted({str(r["suite"]) for r in adapters}) if by_suite else clauses
        index = {label: i for i, label in enumerate(labels)}
        column = {b: j for j, b in enumerate(backends)}
        tallies = np.zeros((len(labels), len(backends), 2))
        for r in adapters:
            outcome = r.get("outcome")
            if outcome in ("passed", "failed"):
                label = str(r["suite"]) if by_suite else f"{r['suite']}::{r['clause']}"
                tallies[index[label], column[_where(r)], 0 if outcome == "passed" else 1] += 1
        run = tallies.sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            grid = np.where(run > 0, tallies[:, :, 0] / run, np.nan)
        cmap = matplotlib.colors.LinearSegmentedColormap.from_list(
            "verdict", ["#cf222e", "#eac54f", "#2da44e"]).with_extremes(bad="#d0d7de")
        fig, ax = plt.subplots(figsize=(5 + 0.9 * len(backends), 1.6 + (0.42 if by_suite else 0.16) * len(labels)))
        ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        ax.set_xticks(range(len(backends)), backends, rotation=35, ha="right", fontsize=10 if by_suite else 8)
        ax.set_yticks(range(len(labels)), labels, fontsize=10 if by_suite else 6)
        what = "suite (share of checks passed)" if by_suite else "clause"
        ax.set_title(f"Conformance of this project's adapters: backend x {what}\n(green passed, red failed, "
                     "grey skipped or not run)", fontsize=11 if by_suite else 9)
        fig.tight_layout()
        path = plot_dir / "conformance_matrix.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        plots.append((path, f"Conformance matrix: backend x {what} (adapters)"))

    plots.extend(_clause_plots(plot_dir, checks))

    versus = _ours_vs_smolagents(checks)
    if versus and any(v["smolagents passed"] + v["smolagents failed"] for v in versus):
        fig, ax = plt.subplots(figsize=(10, 0.5 * len(versus) + 1.5))
        y = np.arange(len(versus))
        for offset, subject, colour in ((-0.2, "adapters", "#0969da"), (0.2, "smolagents", "#bf8700")):
            rates = [100 * v[f"{subject} passed"] / max(1, v[f"{subject} passed"] + v[f"{subject} failed"])
                     for v in versus]
            ax.barh(y + offset, rates, height=0.38, color=colour, label=SUBJECT_LABELS[subject])
            for yy, rate, v in zip(y, rates, versus):
                failed = v[f"{subject} failed"]
                ax.text(rate + 0.5, yy + offset, f"{rate:.0f}% ({failed} failed)", va="center", fontsize=7)
        ax.set_yticks(y, [v["backend"] for v in versus], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 118)
        ax.set_xlabel("checks passed (% of checks run, skips excluded)")
        ax.set_title("Ours vs smolagents: the same suites on the same backends")
        fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        path = plot_dir / "ours_vs_smolagents.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        plots.append((path, "Pass rate of this project's adapters and of smolagents' classes, per backend"))
    return plots


def _clause_plots(plot_dir: Path, checks: Sequence[Mapping[str, Any]]) -> list[tuple[Path, str]]:
    """Per subject, wpt.fyi-style: clause (grouped by level) x backend, green pass, red fail, grey skip/not run."""
    import matplotlib
    import matplotlib.pyplot as plt
    import numpy as np

    from harness.reporting.levels import clause_matrix

    out: list[tuple[Path, str]] = []
    value = {"pass": 1.0, "FAIL": 0.0}
    for subject in sorted({str(r.get("subject")) for r in checks if r.get("clauses")},
                          key=lambda s: (s != "adapters", s)):
        table = clause_matrix(checks, subject)
        if not table:
            continue
        targets = [k for k in table[0] if k not in ("level", "clause")]
        grid = np.array([[value.get(str(line[t]), np.nan) for t in targets] for line in table])
        cmap = matplotlib.colors.ListedColormap(["#cf222e", "#2da44e"]).with_extremes(bad="#d0d7de")
        fig, ax = plt.subplots(figsize=(4 + 0.6 * len(targets), 1.8 + 0.2 * len(table)))
        ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto", interpolation="nearest")
        ax.set_xticks(range(len(targets)), targets, rotation=40, ha="right", fontsize=7)
        ax.set_yticks(range(len(table)), [f"{line['level']}  {line['clause']}" for line in table], fontsize=7)
        ax.set_xticks(np.arange(-0.5, len(targets)), minor=True)
        ax.set_yticks(np.arange(-0.5, len(table)), minor=True)
        ax.grid(which="minor", color="white", linewidth=0.8)
        ax.tick_params(which="minor", length=0)
        ax.set_title(f"{SUBJECT_LABELS.get(subject, subject)}: clause x backend\n(green pass, red fail, "
                     "grey skipped or not run)", fontsize=9)
        fig.tight_layout()
        path = plot_dir / f"clause_matrix_{subject}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        out.append((path, f"Clause x backend matrix: {SUBJECT_LABELS.get(subject, subject)}"))
    return out


# -- the report ---------------------------------------------------------------------------------


def results_frame(rows: Sequence[Mapping[str, Any]]) -> Any:
    """Every row flattened for results.csv: hardware as label and kind, ITL as count and mean, dicts as JSON."""
    import pandas as pd

    frame = pd.DataFrame.from_records(rows)
    hardware = frame.pop("hardware") if "hardware" in frame else None
    if hardware is not None:
        frame.insert(0, "hardware", [hardware_label({"hardware": h}) for h in hardware])
        frame.insert(1, "hardware_kind", [(h or {}).get("kind") for h in hardware])
    if "itl_s" in frame:  # the gaps themselves stay in the JSON Lines; a spreadsheet gets their count and mean
        gaps = frame.pop("itl_s")
        frame["itl_count"] = [len(v) if v else None for v in gaps]
        frame["itl_mean_s"] = [sum(v) / len(v) if v else None for v in gaps]
    for column in ("observations", "versions", "extra"):
        if column in frame:
            frame[column] = [json.dumps(v, separators=(",", ":")) if v not in (None, [], {}) else "" for v in
                             frame[column]]
    return frame


def write_report(rows: Sequence[Mapping[str, Any]], out_dir: Path, previous: Sequence[Mapping[str, Any]] = (),
                 title: str = "Model conformance report", failed_steps: Sequence[str] = ()) -> Path:
    """Write report.md, report.html, results.csv and plots/ under ``out_dir``; returns report.md's path.

    ``failed_steps``: steps of the run behind the rows that failed (named at the top: their rows may be missing).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    checks = [r for r in rows if r.get("kind") == "check"]
    doc = _Doc()
    doc.h(1, title)
    runs = sorted({str(r.get("run")) for r in rows})
    modes = sorted({str(r.get("mode")) for r in checks if r.get("mode")})
    doc.p(f"{len(rows)} result rows (schema version {SCHEMA_VERSION}) from {len(runs)} run(s): {', '.join(runs)}. "
          + (f"Suite modes: {', '.join(modes)} (cloud backends replay recorded cassettes; local engines and "
             f"servers run live)." if modes else ""))
    if failed_steps:
        doc.h(2, "Steps that failed")
        doc.p("These steps of the run failed; what they would have measured is missing or partial below.")
        doc.ul([f"**FAILED** `{step}`" for step in failed_steps])
    doc.h(2, "Hardware")
    doc.table(_hardware_rows(rows))
    versions: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        for k, v in (r.get("versions") or {}).items():
            versions[k].add(v)
    if versions:
        doc.p("Libraries (two versions of one library: the runs used two environments, such as vllm's own): "
              + ", ".join(f"{k} {' / '.join(sorted(v))}" for k, v in sorted(versions.items())))
    if previous:
        doc.h(2, "Changes since the previous run")
        changes = regressions(rows, previous)
        if changes:
            doc.table(changes)
        else:
            doc.p("No check went from pass to fail, and no latency percentile moved outside its confidence "
                  "interval.")
    stats = latency_stats(rows)
    plots = _plots(out_dir, rows, checks)
    if stats:
        doc.h(2, "Latency")
        doc.p("Streaming requests after the warm-up; milliseconds, each percentile with its 95% confidence "
              "interval; n = measured requests per target.")
        table = latency_rows(stats)
        measured = [r for r in table if "note" not in r]
        # two narrower tables read better than one that scrolls: first-token figures, then decode figures
        first = ("hardware", "target", "n", "TTFT p50 ms", "TTFT p90 ms", "TTFT p99 ms", "E2E p50 ms")
        doc.table([{k: v for k, v in r.items() if k in first} for r in measured])
        doc.table([{k: v for k, v in r.items() if k in ("hardware", "target") or k not in first} for r in measured])
        doc.ul([f"**{r['target']}** on {r['hardware']}: not measured ({r['note']})" for r in table if "note" in r])
        untrusted = unstable_targets(rows)
        if untrusted:
            doc.h(3, "Figures that cannot be trusted")
            doc.p("A target whose samples spread too wide (TPOT standard deviation over 10% of the mean, or the 95% "
                  "interval of its median over 20% of the median, as pyperf warns of unstable benchmarks) was "
                  "measured once more; the figures above are its last measurement, marked UNSTABLE when that one "
                  "spread too wide as well. Each attempt with the machine's load while it ran:")
            doc.ul([f"**WARNING** {line}" for line in untrusted])
        hardware = sorted({s["hardware"] for s in stats})
        if len(hardware) > 1:
            doc.h(3, "Latency per hardware")
            doc.p("TTFT p50 / TPOT p50 in milliseconds, one column per machine.")
            per_target: dict[str, dict[str, str]] = defaultdict(dict)
            for s in stats:
                if s["ttft_s"] and s["tpot_s"]:
                    per_target[s["target"]][s["hardware"]] = (f"{1000 * s['ttft_s'][50].value:.1f} / "
                                                              f"{1000 * s['tpot_s'][50].value:.1f}")
            doc.table([{"target": t, **{h: cells.get(h, "-") for h in hardware}} for t, cells in per_target.items()])
        doc.h(3, "Definitions")
        doc.ul([f"**{name}**: {text}" for name, text in DEFINITIONS])
    for path, alt in plots:
        if path.name.startswith("latency_"):
            doc.img(path, alt)
    if checks:
        versus = _ours_vs_smolagents(checks)
        if any(v["smolagents passed"] + v["smolagents failed"] for v in versus):
            doc.h(2, "Ours vs smolagents")
            doc.p("The same suites run against this project's adapters and against smolagents' own classes.")
            doc.table(versus)
            for path, alt in plots:
                if path.name == "ours_vs_smolagents.png":
                    doc.img(path, alt)
        doc.h(2, "Who answered")
        doc.p("Check rows per mode and target, by what answered their requests: target (the endpoint, server or "
              "engine itself), cassette (its recording, replayed), responder (the suites' recorded-reply "
              "responder), fault-injector, fake, none (nothing sent).")
        doc.table(who_answered(checks))
        _levels(doc, checks, plots)
        _raw_behaviour(doc, checks)
        _conformance(doc, checks, next((p for p in plots if p[0].name == "conformance_matrix.png"), None))
    others = sorted({str(r.get("suite")) for r in rows if r.get("kind") == "summary"
                     and r.get("suite") != "bench-latency"})
    if others:
        doc.p("Other benchmark summaries in these results (kept in results.csv): " + ", ".join(others) + ".")
    _write(out_dir / "report.md", doc.markdown(out_dir))
    _write(out_dir / "report.html", doc.html(title))
    _write(out_dir / "results.csv", results_frame(rows).to_csv(index=False))
    return out_dir / "report.md"


def _write(path: Path, text: str) -> None:
    """Write ``text`` whole or not at all, with every known credential and credential-shaped text redacted
    (rows from another machine's run, or written before redaction, may still quote a key)."""
    from harness.contract.secrets import scrub_text

    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(scrub_text(text), encoding="utf-8")
    tmp.replace(path)


__all__ = ["DEFINITIONS", "regressions", "results_frame", "write_report"]
