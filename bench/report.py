"""Result rows, the table (text and Markdown) and the files bench/results/latest.{json,md}."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import summary

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Target:
    """`ratio >= 0.5` (on ours/baseline) or `ours <= 25` (on our median)."""

    on: str  # "ratio" | "ours"
    op: str  # ">=" | "<="
    value: float

    def met(self, number: float | None) -> bool | None:
        if number is None:
            return None
        return number >= self.value if self.op == ">=" else number <= self.value

    def text(self) -> str:
        return f"{self.on} {self.op} {self.value:g}"


@dataclass
class Row:
    scenario: str
    metric: str
    unit: str
    ours_label: str
    ours: list[float]
    baseline_label: str = ""
    baseline: list[float] = field(default_factory=list)
    higher_is_better: bool = True
    target: Target | None = None
    note: str = ""

    def ratio(self) -> float | None:
        if not self.baseline or not self.ours:
            return None
        base = summary(self.baseline)["median"]
        return summary(self.ours)["median"] / base if base else None

    def met(self) -> bool | None:
        if self.target is None or not self.ours:
            return None
        if self.target.on == "ratio":
            return self.target.met(self.ratio())
        return self.target.met(summary(self.ours)["median"])

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ours_summary"] = summary(self.ours) if self.ours else None
        data["baseline_summary"] = summary(self.baseline) if self.baseline else None
        data["ratio"] = self.ratio()
        data["target"] = self.target.text() if self.target else None
        data["met"] = self.met()
        return data


def delivery_rows(
    scenario: str, metric: str, ours: list[float], baseline: list[float], baseline_label: str, ratio: float
) -> list[Row]:
    """A delivery scenario's two throughput rows: deliveries/s against its baseline (`ratio` the
    target), and the same deliveries/s on their own against the 1,000/s every such scenario owes."""
    return [
        Row(
            scenario,
            metric,
            "deliveries/s",
            ours=ours,
            ours_label="ours",
            baseline=baseline,
            baseline_label=baseline_label,
            target=Target("ratio", ">=", ratio),
        ),
        Row(
            scenario,
            "absolute deliveries/s",
            "deliveries/s",
            ours=ours,
            target=Target("ours", ">=", 1000),
            ours_label="ours",
        ),
    ]


def _num(x: float) -> str:
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _cell(values: list[float], label: str) -> str:
    if not values:
        return "-"
    s = summary(values)
    spread = f" ({_num(s['min'])}-{_num(s['max'])})" if len(values) > 1 else ""
    return f"{_num(s['median'])}{spread} {label}".strip()


def table_rows(rows: list[Row]) -> list[list[str]]:
    out = [
        [
            "scenario",
            "metric",
            "baseline: median (min-max)",
            "ours: median (min-max)",
            "ours/base",
            "target",
            "met",
        ]
    ]
    for r in rows:
        ratio = r.ratio()
        met = r.met()
        metric = f"{r.metric} [{r.unit}]" + ("" if r.higher_is_better else " (lower is better)")
        out.append(
            [
                r.scenario,
                metric,
                _cell(r.baseline, r.baseline_label),
                _cell(r.ours, r.ours_label),
                f"{ratio:.2f}" if ratio is not None else "-",
                r.target.text() if r.target else "-",
                {True: "yes", False: "NO", None: "-"}[met],
            ]
        )
    return out


def text_table(rows: list[Row]) -> str:
    cells = table_rows(rows)
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    cells = table_rows(rows)
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in cells[1:]]
    return "\n".join(lines)


def facts_line(facts: dict[str, Any]) -> str:
    load = facts.get("loadavg_end") or facts.get("loadavg")
    return (
        f"{facts['date']} · {facts['nproc']} cores ({facts.get('cpu') or '?'}) · "
        f"load {facts['loadavg']} at start, {load} at end · Python {facts['python']} · "
        f"git {facts['git']} (+{facts['git_dirty_files']} uncommitted files, "
        f"code {facts.get('code_fingerprint')}) · "
        f"mode {facts.get('mode')}"
    )


def write(
    rows: list[Row], facts: dict[str, Any], config: dict[str, Any], notes: list[str], name: str
) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"machine": facts, "config": config, "rows": [r.as_json() for r in rows], "notes": notes}
    path = RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)
    md = [
        f"# Benchmark results ({facts['date'][:10]})",
        "",
        facts_line(facts),
        "",
        "Medians over the rounds, min-max in brackets; every ratio is ours / baseline from the same run,",
        "baseline and ours run alternately. Produced by `make bench`"
        + (" (quick smoke: tiny counts, not a measurement)." if facts.get("mode") == "quick" else "."),
        "",
        markdown_table(rows),
        "",
    ]
    if notes:
        md += ["Notes:", "", *[f"- {n}" for n in notes], ""]
    (RESULTS / f"{name}.md").write_text("\n".join(md))
    return path
