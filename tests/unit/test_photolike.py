import io
import random
import shutil

import numpy as np
from PIL import Image

from lookalike.data.photolike import PHOTO_SIZE, photo_like, photo_like_bytes, write_photo_like_set
from lookalike.data.sources import open_source

from imagegen import write_catalog


def fashion_mnist_like() -> Image.Image:
    image = Image.new("L", (28, 28), 0)
    image.paste(220, (8, 4, 20, 24))  # a white garment on black, like Fashion-MNIST
    return image


def test_variants_are_reproducible_and_differ_from_each_other():
    a = photo_like_bytes(fashion_mnist_like(), random.Random("s-1"))
    assert a == photo_like_bytes(fashion_mnist_like(), random.Random("s-1"))
    assert a != photo_like_bytes(fashion_mnist_like(), random.Random("s-2"))
    assert a[:2] == b"\xff\xd8"


def test_variants_are_photo_sized_colour_images_with_varied_backgrounds():
    corners = []
    for seed in range(20):
        image = photo_like(fashion_mnist_like(), random.Random(seed))
        assert image.size == (PHOTO_SIZE, PHOTO_SIZE) and image.mode == "RGB"
        corners.append(np.asarray(image)[2, 2].mean())
    assert min(corners) < 100 < max(corners)  # dark and light backgrounds both occur


def test_photo_like_set_is_written_once_with_a_manifest(tmp_path):
    write_catalog(tmp_path / "src", per_category=2)
    entries = open_source(tmp_path / "src")
    manifest = write_photo_like_set(entries, tmp_path / "photo", n=4)
    rows = open_source(manifest)
    assert len(rows) == 4 and all(r.path.is_file() and r.category for r in rows)
    mtime = manifest.stat().st_mtime
    assert write_photo_like_set(entries, tmp_path / "photo", n=4) == manifest and manifest.stat().st_mtime == mtime


def test_a_photo_like_set_of_a_moved_home_is_made_again_from_the_files_now_there(tmp_path):
    """Each row names its original by path (exact-item queries find their item by it): a set copied along with
    its gallery to another folder, as a restored backup is, must name the copies, not the old files."""
    write_catalog(tmp_path / "old" / "src", per_category=2)
    write_photo_like_set(open_source(tmp_path / "old" / "src"), tmp_path / "old" / "photo", n=4)
    shutil.copytree(tmp_path / "old", tmp_path / "new")
    entries = open_source(tmp_path / "new" / "src")
    manifest = write_photo_like_set(entries, tmp_path / "new" / "photo", n=4)
    sources = {str(row.metadata["source"]) for row in open_source(manifest)}
    assert len(sources) == 4 and sources <= {str(e.path) for e in entries}


def test_a_studio_rendering_is_a_portrait_frame_on_a_light_background():
    from lookalike.data.photolike import STUDIO

    for seed in range(10):
        data = photo_like_bytes(fashion_mnist_like(), random.Random(seed), style=STUDIO)
        image = Image.open(io.BytesIO(data))
        assert image.size == (PHOTO_SIZE, round(PHOTO_SIZE * 4 / 3))
        assert np.asarray(image.convert("L"))[2, 2] > 150  # a light studio background

