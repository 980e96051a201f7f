"""Writing an evaluation: ``report.json``, ``report.md`` and PNG plots in a report folder."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lookalike.evaluation.metrics import CURVE_KS, RetrievalMetrics  # noqa: E402
from lookalike.io.files import write_atomically  # noqa: E402

LATEST = "LATEST"
HEADLINE = ("precision@1", "recall@5", "recall@10", "precision@5", "precision@10", "mAP@10", "MAP@R", "NDCG@10")


EXACT_HEADLINE = ("recall@1", "recall@5", "recall@10", "median rank", "score spread@10")


def write_report(root: Path, rows: dict[str, RetrievalMetrics], meta: dict[str, Any],
                 exact: dict[str, dict[str, float]] | None = None) -> Path:
    """Write the report of ``rows`` (name -> metrics; the first is the model under test) and of the exact-item
    rows to a new folder under ``root`` and point ``root/LATEST`` at it. Returns the folder."""
    folder = root / time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    main_name, main = next(iter(rows.items()))
    data = {"meta": meta, "rows": {name: m.to_dict() for name, m in rows.items()}, "exact_item": exact or {}}
    (folder / "report.json").write_text(json.dumps(data, indent=2))
    _confusion_plot(main, folder / "confusion.png", f"{main_name}: query category vs top-1 category")
    _per_category_plot(main, folder / "per_category.png")
    _curves_plot(rows, folder / "curves.png")
    (folder / "report.md").write_text(_markdown(rows, meta, exact or {}))
    write_atomically(root / LATEST, folder.name)
    return folder


def latest_report(root: Path) -> Path | None:
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    folder = root / pointer.read_text().strip()
    return folder if folder.is_dir() else None


def _markdown(rows: dict[str, RetrievalMetrics], meta: dict[str, Any], exact: dict[str, dict[str, float]]) -> str:
    lines = ["# Retrieval accuracy", ""]
    lines += [f"- **{k}**: {v}" for k, v in meta.items()]
    lines += ["", "## Category protocol (relevant: same category)", "",
              "| model | queries | " + " | ".join(HEADLINE) + " |", "|---|---|" + "---|" * len(HEADLINE)]
    for name, m in rows.items():
        values = " | ".join(f"{m.overall[h]:.4f}" for h in HEADLINE)
        lines.append(f"| {name} | {m.queries} | {values} |")
    if exact:
        lines += ["", "## Exact item (catalog items re-photographed; relevant: the very item)", "",
                  "| model / photos | queries | " + " | ".join(EXACT_HEADLINE) + " |",
                  "|---|---|" + "---|" * len(EXACT_HEADLINE)]
        for name, figures in exact.items():
            values = " | ".join(f"{figures[h]:.4f}" if "rank" not in h else f"{figures[h]:g}" for h in EXACT_HEADLINE)
            lines.append(f"| {name} | {figures['queries']:.0f} | {values} |")
    main_name, main = next(iter(rows.items()))
    lines += ["", f"## Per category ({main_name})", "",
              "| category | queries | " + " | ".join(HEADLINE) + " |", "|---|---|" + "---|" * len(HEADLINE)]
    for category, row in main.per_category.items():
        values = " | ".join(f"{row[h]:.4f}" for h in HEADLINE)
        lines.append(f"| {category} | {row['queries']} | {values} |")
    lines += ["", "## Confusion matrix (rows: query category, columns: top-1 result category)", "",
              "| | " + " | ".join(main.categories) + " |", "|---|" + "---|" * len(main.categories)]
    for category, counts in zip(main.categories, main.confusion.tolist(), strict=True):
        lines.append(f"| {category} | " + " | ".join(str(c) for c in counts) + " |")
    lines += ["", "![confusion](confusion.png)", "![per category](per_category.png)", "![curves](curves.png)", ""]
    return "\n".join(lines)


def _confusion_plot(m: RetrievalMetrics, path: Path, title: str) -> None:
    counts = m.confusion.astype(float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.6 * len(m.categories) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(m.categories)), m.categories, rotation=45, ha="right")
    ax.set_yticks(range(len(m.categories)), m.categories)
    ax.set_xlabel("top-1 result category")
    ax.set_ylabel("query category")
    ax.set_title(title)
    if len(m.categories) <= 20:
        for i in range(len(m.categories)):
            for j in range(len(m.categories)):
                if counts[i, j]:
                    ax.text(j, i, f"{share[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _per_category_plot(m: RetrievalMetrics, path: Path) -> None:
    categories = list(m.per_category)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(categories) + 2), 4))
    x = np.arange(len(categories))
    for offset, metric in ((-0.2, "precision@1"), (0.2, "recall@5")):
        ax.bar(x + offset, [m.per_category[c][metric] for c in categories], width=0.4, label=metric)
    ax.set_xticks(x, categories, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right")
    ax.set_title("per category")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _curves_plot(rows: dict[str, RetrievalMetrics], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, m in rows.items():
        ax.plot(CURVE_KS, m.curve["precision"], marker="o", label=f"{name} precision@K")
        ax.plot(CURVE_KS, m.curve["recall"], marker="s", linestyle="--", label=f"{name} recall@K")
    ax.set_xscale("log")
    ax.set_xticks(CURVE_KS, [str(k) for k in CURVE_KS])
    ax.set_xlabel("K")
    ax.set_ylim(0, 1.01)
    ax.legend(fontsize=7)
    ax.set_title("precision and recall at K")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
