"""An evaluation job: the active model (and, on request, the baselines) measured on a query catalog against a
gallery, with the category and exact-item protocols, written as a report under HOME/reports."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from lookalike.bootstrap import build_featurizer, fine_tuned_weights, load_extractor, load_head
from lookalike.config import Settings
from lookalike.data.photolike import write_photo_like_set
from lookalike.data.sources import open_source
from lookalike.evaluation.report import write_report
from lookalike.evaluation.run import Evaluation, Progress, evaluate, write_exact_item_sets


@dataclass(frozen=True)
class EvaluationReport:
    evaluation: Evaluation
    folder: Path  # where report.json, report.md and the plots are
    models: list[str]  # the measured models, in order (the active one first)
    query_sets: list[str]  # "clean", and "photo-like" when asked
    exact_styles: list[str]  # the exact-item photo strengths, when asked


def evaluate_active_model(settings: Settings, query_source: Path, gallery_source: Path, query_split: str | None,
                          gallery_split: str | None, progress: Progress, *, baselines: bool = False,
                          photo_like: int = 0, limit: int | None = None, exact_items: int = 0) -> EvaluationReport:
    """Measure the active model; ``photo_like``: also query with N photo-like renderings of the queries;
    ``exact_items``: also re-photograph N gallery items (three styles) and look for the very item."""
    query_entries = open_source(query_source, split=query_split)
    gallery_entries = open_source(gallery_source, split=gallery_split)
    if limit:
        query_entries = random.Random(0).sample(query_entries, min(limit, len(query_entries)))
    sets = {"clean": query_entries}
    if photo_like:
        folder = settings.datasets_dir / f"photo-like-{query_source.parent.name}-{query_split}-{photo_like}"
        sets["photo-like"] = open_source(write_photo_like_set(query_entries, folder, photo_like))
    exact_sets = {}
    if exact_items:
        folder = settings.datasets_dir / f"exact-{gallery_source.parent.name}-{gallery_split}-{exact_items}"
        exact_sets = {style: open_source(manifest)
                      for style, manifest in write_exact_item_sets(gallery_entries, folder, exact_items).items()}
    extractor = load_extractor(settings)
    featurizer = build_featurizer(settings, extractor)
    head = load_head(settings.heads_dir, extractor)
    frozen = featurizer  # the "frozen backbone" baseline: the pretrained backbone, even after fine-tuning
    if baselines and fine_tuned_weights(settings):
        frozen = build_featurizer(settings, load_extractor(settings, fine_tuned=False))
    evaluation = evaluate(featurizer, head, sets, gallery_entries, baselines, progress, frozen, exact_sets)
    # sources by name only: the report is served to anyone who opens the dashboard
    meta = {"model": f"{extractor.fingerprint}+{head.version}", "queries": source_name(query_source, settings.home),
            "query split": query_split, "gallery": source_name(gallery_source, settings.home),
            "gallery split": gallery_split, "gallery size": len(gallery_entries)}
    if baselines:
        meta["frozen backbone"] = frozen.extractor.fingerprint
    folder = write_report(settings.home / "reports", evaluation.rows, meta, evaluation.exact)
    models = list(dict.fromkeys(name.rsplit(" / ", 1)[0] for name in evaluation.rows))
    return EvaluationReport(evaluation, folder, models, list(sets), list(exact_sets))


def source_name(source: Path, home: Path) -> str:
    """A data source as the report names it: relative to the home, else its last two path parts."""
    source = source.resolve()
    return str(source.relative_to(home.resolve()) if source.is_relative_to(home.resolve())
               else Path(*source.parts[-2:]))
