"""ovtools.io.inputs: folders and globs take every suffix the decoder opens; non-images are reported as skipped."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from ovtools.io.images import image_suffixes, load_image
from ovtools.io.inputs import expand_image_inputs, skipped_summary

RNG = np.random.default_rng(0)
AVIF = features.check("avif")


def write(path: Path, fmt: str) -> Path:
    Image.fromarray(RNG.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(path, fmt)
    return path


@pytest.fixture
def mixed(tmp_path):
    """A folder of images with suffixes other than .jpg/.png (as cameras, browsers and phones write them)."""
    d = tmp_path / "mixed"
    d.mkdir()
    write(d / "a.jfif", "JPEG")
    write(d / "b.jpe", "JPEG")
    write(d / "c.JPG", "JPEG")
    write(d / "e.Tif", "TIFF")
    if AVIF:
        write(d / "d.avif", "AVIF")
    else:  # Pillow without libavif: another registered suffix
        write(d / "d.qoi", "QOI")
    (d / "notes.txt").write_text("not an image")
    (d / "README").write_text("no suffix")
    (d / ".hidden.jpg").write_text("hidden: ignored, not even counted")
    return d


def test_registered_suffixes_cover_what_users_have():
    s = image_suffixes()
    assert {".jpg", ".jpeg", ".jfif", ".jpe", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif", ".qoi"} <= s
    assert AVIF == (".avif" in s)
    assert ".pdf" not in s and ".pcd" not in s and ".h5" not in s  # save-only, a point cloud, a stub
    assert all(x == x.lower() and x.startswith(".") for x in s)


def test_folder_takes_every_decodable_suffix_and_counts_the_rest(mixed):
    found = expand_image_inputs([mixed])
    names = [p.name for p in found.files]
    assert names == ["a.jfif", "b.jpe", "c.JPG", "d.avif" if AVIF else "d.qoi", "e.Tif"]
    assert [p.name for p in found.skipped] == ["README", "notes.txt"]
    assert found.problems == [] and found.many
    for p in found.files:  # the decoder really opens each of them
        assert load_image(p).pixels.shape == (24, 32, 3)
    line = skipped_summary(found.skipped)
    assert line.startswith("skipped 2 non-image file(s) (.txt, no suffix): ") and "\n" not in line


def test_glob_is_case_insensitive_on_suffix_and_reports_non_images(mixed):
    found = expand_image_inputs([str(mixed / "*")])
    assert len(found.files) == 5 and len(found.skipped) == 2
    only_text = expand_image_inputs([str(mixed / "*.txt")])
    assert only_text.files == [] and only_text.skipped == [mixed / "notes.txt"]
    assert only_text.problems == [(str(mixed / "*.txt"), "pattern matches no image files (1 other file(s) skipped: "
                                                         "not an image suffix)")]


def test_named_file_is_taken_whatever_its_suffix_and_leaves_skipped(mixed):
    found = expand_image_inputs([mixed, mixed / "notes.txt"])
    assert found.files[-1] == mixed / "notes.txt" and [p.name for p in found.skipped] == ["README"]
    single = expand_image_inputs([mixed / "a.jfif"])
    assert single.files == [mixed / "a.jfif"] and not single.many and not single.skipped


def test_folder_without_images_and_missing_path(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "x.csv").write_text("1,2")
    found = expand_image_inputs([tmp_path / "docs", tmp_path / "nope"])
    assert found.files == [] and [p.name for p in found.skipped] == ["x.csv"]
    assert found.problems == [
        (str(tmp_path / "docs"), "folder has no image files (1 other file(s) skipped: not an image suffix; "
                                 "try --recursive)"),
        (str(tmp_path / "nope"), "no such file or folder")]


def test_recursive_and_duplicates(mixed):
    sub = mixed / "sub"
    sub.mkdir()
    write(sub / "f.jpeg", "JPEG")
    assert [p.name for p in expand_image_inputs([mixed]).files].count("f.jpeg") == 0
    found = expand_image_inputs([mixed, str(mixed / "*.jfif")], recursive=True)
    assert [p.name for p in found.files].count("a.jfif") == 1 and sub / "f.jpeg" in found.files


def test_decoder_opens_a_jfif_in_memory_too():
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (10, 20, 30)).save(buf, "JPEG")
    assert Image.open(buf).format == "JPEG"  # .jfif/.jpe are JPEG files: only the suffix differs
