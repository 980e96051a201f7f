"""evaluate(): the rows of the model under test and of the baselines, each from the features it should use."""

from pathlib import Path

from lookalike.backbone.runtime import load_backbone
from lookalike.data.sources import iter_folder
from lookalike.embedding.featurizer import Featurizer
from lookalike.embedding.head import fit_pca_head
from lookalike.embedding.labelled import collect_features
from lookalike.evaluation.run import evaluate

from imagegen import write_tiny_backbone


def test_the_frozen_baseline_comes_from_the_pretrained_featurizer_when_one_is_given(
        tmp_path: Path, catalog_dir: Path, query_dir: Path, extractor) -> None:
    model = Featurizer(extractor)  # stands in for a fine-tuned backbone
    pretrained = Featurizer(load_backbone(write_tiny_backbone(tmp_path / "tiny"), tmp_path / "models"))
    gallery, queries = list(iter_folder(catalog_dir)), list(iter_folder(query_dir))
    head = fit_pca_head(collect_features(model, gallery).features, extractor.fingerprint, dim=8)

    alone = evaluate(pretrained, fit_pca_head(collect_features(pretrained, gallery).features, "tiny", dim=8),
                     {"clean": queries}, gallery, baselines=True).rows
    mixed = evaluate(model, head, {"clean": queries}, gallery, baselines=True, frozen=pretrained).rows
    plain = evaluate(model, head, {"clean": queries}, gallery, baselines=True).rows

    assert mixed["pca head / clean"].overall == plain["pca head / clean"].overall
    assert mixed["frozen backbone / clean"].overall == alone["frozen backbone / clean"].overall
    assert mixed["frozen backbone / clean"].overall != plain["frozen backbone / clean"].overall
    assert mixed["raw pixels / clean"].overall == plain["raw pixels / clean"].overall
