import numpy as np
import pytest

from lookalike.duplicates import check_threshold, collapse
from lookalike.errors import InvalidRequestError


def test_collapse_keeps_the_best_of_each_near_duplicate_set_in_order():
    a, b, c = np.eye(3, dtype=np.float32)
    a_copy = (a + 0.05 * b) / np.linalg.norm(a + 0.05 * b)
    rows = np.stack([a, a_copy, b, a, c])
    assert collapse(rows, 0.95, keep=5) == [0, 2, 4]
    assert collapse(rows, 0.95, keep=2) == [0, 2]
    assert collapse(rows, 1.01, keep=5) == [0, 1, 2, 3, 4]  # nothing is that alike: all kept
    assert collapse(rows[:0], 0.9, keep=3) == []


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.2])
def test_threshold_must_be_a_positive_similarity(bad):
    with pytest.raises(InvalidRequestError):
        check_threshold(bad)


def _jpeg(image, quality):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_signatures_match_copies_and_tell_colour_variants_and_other_garments_apart():
    from PIL import ImageOps

    from lookalike.duplicates import COLOUR_DISTANCE, HASH_DISTANCE
    from lookalike.signatures import signature

    from imagegen import make_product

    original = make_product("dresses", 2, 320)
    copies = [original.resize((640, 640)), _jpeg(original, 40), original.crop((1, 1, 319, 319)).resize((320, 320)),
              _jpeg(original.crop((13, 13, 307, 307)), 60)]
    base = signature(original)
    for copy in copies:
        found = signature(copy)
        assert base.hash_distance(found) <= HASH_DISTANCE and base.colour_distance(found) <= COLOUR_DISTANCE
    recoloured = ImageOps.colorize(original.convert("L"), black="white", white="darkgreen")  # same shape, other colour
    assert base.colour_distance(signature(recoloured)) > COLOUR_DISTANCE
    others = [signature(make_product(c, s, 320)) for c, s in (("dresses", 3), ("tees", 2), ("trousers", 2))]
    assert all(base.hash_distance(other) > HASH_DISTANCE for other in others)


def test_the_hash_vouches_for_a_copy_below_the_threshold_and_colour_vetoes_a_variant_above_it():
    from lookalike.catalog.repository import ItemRecord
    from lookalike.duplicates import _agree
    from lookalike.signatures import Signature

    def record(i):
        return ItemRecord(i, f"/x/{i}.png", f"hash-{i}", "dresses", None, {}, "m")

    grey, green = bytes([120] * 48), bytes([20, 160, 40] * 16)
    signatures = {"hash-1": Signature(0xF0F0_F0F0_F0F0_F0F0, grey),
                  "hash-2": Signature(0xF0F0_F0F0_F0F0_F0F1, grey),  # one bit away: a re-encoded copy
                  "hash-3": Signature(0xF0F0_F0F0_F0F0_F0F0, green),  # the same shape in green
                  "hash-4": Signature(0x0F0F_0F0F_0F0F_0F0F, grey)}  # another garment of the same colour
    left = [record(1), record(1), record(1), record(1)]
    right = [record(2), record(3), record(4), record(5)]  # item 5's image could not be read: no signature
    scores = np.array([0.94, 0.999, 0.94, 0.97])  # 0.94: below the threshold, within the hash's candidate floor
    assert _agree(signatures, left, right, scores, threshold=0.95).tolist() == [True, False, False, True]
    assert not _agree(signatures, left[:1], right[:1], np.array([0.90]), threshold=0.95)[0]  # too far for the hash



def test_a_calibration_of_an_older_rule_is_fitted_again():
    from types import SimpleNamespace

    from lookalike.duplicates import RULE, DuplicateThreshold

    engine = SimpleNamespace(model_version="m", store=[0] * 100)
    current = DuplicateThreshold("m", 100, 0.9, True, 0.95, 0.85, rule=RULE)
    assert current.current_for(engine)  # type: ignore[arg-type]
    assert not DuplicateThreshold("m", 100, 0.9, True, 0.95, 0.85).current_for(engine)  # type: ignore[arg-type]
