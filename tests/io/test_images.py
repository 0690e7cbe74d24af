"""Odd image inputs, each generated on the fly, through ``ovtools.io.images``."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from ovtools.errors import ImageLoadError
from ovtools.io.images import as_loaded, load_image
from ovtools.prompts import CANONICAL_NEGATIVES


def _check_rgb(loaded, shape_hw):
    assert loaded.pixels.dtype == np.uint8
    assert loaded.pixels.shape == (*shape_hw, 3)
    assert loaded.pixels.flags["C_CONTIGUOUS"]


def _gradient(h, w):
    a = np.full((h, w, 3), 77, np.uint8)
    a[..., 0] = np.linspace(0, 255, w).astype(np.uint8)[None, :]
    a[..., 1] = np.linspace(0, 255, h).astype(np.uint8)[:, None]
    return a


def test_rgba_composited_on_white(tmp_path):
    a = np.zeros((20, 30, 4), np.uint8)
    a[..., 0] = 200
    a[:, :15, 3] = 255  # left half opaque red, right half transparent
    p = tmp_path / "rgba.png"
    Image.fromarray(a, "RGBA").save(p)
    img = load_image(p)
    _check_rgb(img, (20, 30))
    assert tuple(img.pixels[5, 2]) == (200, 0, 0)
    assert tuple(img.pixels[5, 25]) == (255, 255, 255)


def test_palette_with_transparency(tmp_path):
    im = Image.new("P", (16, 8))
    im.putpalette([0, 0, 255] + [255, 0, 0] + [0] * (256 * 3 - 6))
    im.paste(1, (0, 0, 8, 8))
    im.info["transparency"] = 0
    p = tmp_path / "pal.png"
    im.save(p, transparency=0)
    img = load_image(p)
    _check_rgb(img, (8, 16))
    assert tuple(img.pixels[4, 2]) == (255, 0, 0)
    assert tuple(img.pixels[4, 12]) == (255, 255, 255)  # transparent index → white, not blue


def test_la_png(tmp_path):
    a = np.full((10, 12, 2), 50, np.uint8)
    a[:, 6:, 1] = 0
    a[:, :6, 1] = 255
    p = tmp_path / "la.png"
    Image.fromarray(a, "LA").save(p)
    img = load_image(p)
    _check_rgb(img, (10, 12))
    assert tuple(img.pixels[0, 0]) == (50, 50, 50)
    assert tuple(img.pixels[0, 11]) == (255, 255, 255)


def test_16bit_grayscale_png(tmp_path):
    g = np.linspace(0, 65535, 40 * 30).reshape(30, 40).astype(np.uint16)
    p = tmp_path / "g16.png"
    Image.fromarray(g).save(p)
    img = load_image(p)
    _check_rgb(img, (30, 40))
    expect = np.round(g.astype(np.float64) / 65535 * 255)
    assert np.abs(img.pixels[..., 0].astype(int) - expect).max() <= 1
    assert img.pixels[-1, -1, 0] == 255 and img.pixels[0, 0, 0] == 0


def test_16bit_grayscale_png_dark(tmp_path):
    """A dark 16-bit image (all values < 256) is still scaled as 16 bit, i.e. stays dark."""
    g = np.full((8, 8), 200, np.uint16)
    p = tmp_path / "dark16.png"
    Image.fromarray(g).save(p)
    assert load_image(p).pixels.max() <= 1


def test_16bit_rgb_png(tmp_path):
    cv2 = pytest.importorskip("cv2")
    rgb = np.zeros((12, 20, 3), np.uint16)
    rgb[..., 0] = 65535
    rgb[..., 1] = np.linspace(0, 65535, 20).astype(np.uint16)[None, :]
    p = tmp_path / "rgb16.png"
    assert cv2.imwrite(str(p), rgb[..., ::-1])  # OpenCV writes BGR
    img = load_image(p)
    _check_rgb(img, (12, 20))
    assert (img.pixels[..., 0] == 255).all() and (img.pixels[..., 2] == 0).all()
    expect = np.round(rgb[..., 1].astype(float) / 65535 * 255)
    assert np.abs(img.pixels[..., 1].astype(int) - expect).max() <= 1


def test_grayscale(tmp_path):
    p = tmp_path / "gray.png"
    Image.fromarray(np.full((9, 7), 123, np.uint8), "L").save(p)
    img = load_image(p)
    _check_rgb(img, (9, 7))
    assert (img.pixels == 123).all()


def test_cmyk_jpeg(tmp_path):
    p = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (24, 16), (0, 255, 255, 0)).save(p, quality=95)  # pure red in CMYK
    img = load_image(p)
    _check_rgb(img, (16, 24))
    r, g, b = img.pixels[8, 12].astype(int)
    assert r > 200 and g < 60 and b < 60


def _exif_jpeg(path: Path, orientation: int, w=40, h=20):
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2] = (255, 0, 0)  # left half red, right half blue (in stored orientation)
    a[:, w // 2 :] = (0, 0, 255)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.save(path, exif=exif.tobytes(), quality=95)


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotated_jpeg(tmp_path, orientation):
    p = tmp_path / f"o{orientation}.jpg"
    _exif_jpeg(p, orientation)
    img = load_image(p)
    assert img.original_size == (40, 20)  # rotated: H = stored width
    _check_rgb(img, (40, 20))
    top, bottom = img.pixels[3, 10].astype(int), img.pixels[-4, 10].astype(int)
    if orientation == 6:  # rotate 90° clockwise: stored left (red) ends on top
        assert top[0] > 200 and top[2] < 60 and bottom[2] > 200
    else:  # 8: rotate 90° counter-clockwise: stored left (red) ends at the bottom
        assert bottom[0] > 200 and bottom[2] < 60 and top[2] > 200


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF", "AVIF"])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_rotation_in_other_containers(tmp_path, fmt, orientation):
    if fmt == "AVIF" and not features.check("avif"):
        pytest.skip("Pillow built without AVIF")
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = (255, 0, 0)  # stored: left half red, right half blue
    a[:, 20:] = (0, 0, 255)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = orientation
    p = tmp_path / f"o{orientation}.{fmt.lower()}"
    im.save(p, fmt, exif=exif if fmt == "TIFF" else exif.tobytes(), **({"quality": 95} if fmt != "PNG" else {}))
    img = load_image(p)
    px = img.pixels.astype(int)
    h, w = px.shape[:2]
    assert img.original_size == ((20, 40) if orientation == 3 else (40, 20)) == (h, w)
    red = {3: px[h // 2, w - 3], 6: px[2, w // 2], 8: px[h - 3, w // 2]}[orientation]  # where stored left ends
    assert red[0] > 200 and red[2] < 60


def test_multi_page_tiff_and_mpo_first_frame(tmp_path):
    first, second = Image.new("RGB", (20, 10), (200, 10, 10)), Image.new("RGB", (30, 30), (10, 10, 200))
    first.save(tmp_path / "pages.tif", save_all=True, append_images=[second])
    first.save(tmp_path / "stereo.mpo", "MPO", save_all=True, append_images=[first.copy()], quality=95)
    for name in ("pages.tif", "stereo.mpo"):
        img = load_image(tmp_path / name)
        _check_rgb(img, (10, 20))
        r, g, b = img.pixels[5, 10].astype(int)
        assert r > 190 and g < 25 and b < 25, name


def test_palette_png_with_partial_alpha(tmp_path):
    p = tmp_path / "pal.png"
    im = Image.new("P", (8, 4), 0)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.save(p, transparency=bytes([128, 255]))  # entry 0 half transparent: red over white
    np.testing.assert_allclose(load_image(p).pixels[1, 1], [255, 127, 127], atol=1)


def test_float_image_with_nan_and_inf(tmp_path):
    a = np.tile(np.linspace(0.0, 1.0, 20, dtype=np.float32), (10, 1))
    a[0, :5] = np.nan
    a[1, :3], a[2, :3] = np.inf, -np.inf
    p = tmp_path / "depth.tif"
    Image.fromarray(a).save(p)
    px = load_image(p).pixels[..., 0].astype(int)
    assert (px[0, :5] == 0).all() and (px[1, :3] == 255).all() and (px[2, :3] == 0).all()
    np.testing.assert_array_equal(px[5], np.round(np.linspace(0, 255, 20)).astype(int))  # finite range kept


def test_32_bit_integer_image_is_stretched_not_clipped(tmp_path):
    a = (np.arange(200, dtype=np.int32).reshape(10, 20) - 100) * 1000  # -100000 .. 99000
    p = tmp_path / "i32.tif"
    Image.fromarray(a).save(p)
    px = load_image(p).pixels[..., 0].astype(int)
    assert px[0, 0] == 0 and px[-1, -1] == 255
    assert len(np.unique(px)) > 150  # was 2 values (everything clipped to 0 or 255)


def test_exif_rotated_with_max_side(tmp_path):
    p = tmp_path / "o6big.jpg"
    _exif_jpeg(p, 6, w=400, h=200)
    img = load_image(p, max_side=100)
    assert img.original_size == (400, 200)
    assert max(img.pixels.shape[:2]) <= 100 and img.pixels.shape[0] > img.pixels.shape[1]
    sy, sx = img.scale
    assert sy == pytest.approx(4.0, rel=0.05) and sx == pytest.approx(4.0, rel=0.05)


@pytest.mark.parametrize("shape", [(1, 50), (50, 1)])
def test_one_pixel_thin_image(tmp_path, shape):
    p = tmp_path / "thin.png"
    Image.fromarray(np.full((*shape, 3), 90, np.uint8)).save(p)
    img = load_image(p)
    _check_rgb(img, shape)
    small = load_image(p, max_side=10)
    assert small.pixels.shape[:2] in ((1, 10), (10, 1)) and small.original_size == shape


def test_very_large_jpeg_bounded(tmp_path):
    p = tmp_path / "big.jpg"
    Image.fromarray(_gradient(4000, 6000)).save(p, quality=80)
    img = load_image(p, max_side=1024)
    assert img.original_size == (4000, 6000)
    assert max(img.pixels.shape[:2]) <= 1024
    assert img.pixels.shape[:2] == (683, 1024) or abs(img.pixels.shape[0] / img.pixels.shape[1] - 4000 / 6000) < 0.01
    sy, sx = img.scale
    assert sy * img.pixels.shape[0] == pytest.approx(4000) and sx * img.pixels.shape[1] == pytest.approx(6000)


def test_animated_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    p = tmp_path / "anim.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=50, loop=0)
    img = load_image(p)
    _check_rgb(img, (10, 10))
    r, g, b = img.pixels[5, 5].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_animated_gif_seeked_pil_image():
    """A PIL image left on a later frame is still read from its first frame."""
    frames = [Image.new("RGB", (6, 6), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    im = Image.open(io.BytesIO(buf.getvalue()))
    im.seek(1)
    img = as_loaded(im)
    assert img.pixels[3, 3, 0] > 200 and img.pixels[3, 3, 2] < 60


@pytest.mark.parametrize("fmt,suffix", [("JPEG", ".jpg"), ("PNG", ".png")])
def test_truncated_file(tmp_path, fmt, suffix):
    buf = io.BytesIO()
    Image.fromarray(_gradient(64, 64)).save(buf, format=fmt)
    p = tmp_path / f"trunc{suffix}"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageLoadError, match="trunc"):
        load_image(p)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(ImageLoadError, match=r"empty\.jpg.*empty"):
        load_image(p)


def test_text_file_named_jpg(tmp_path):
    p = tmp_path / "notes.jpg"
    p.write_text("this is not an image\n")
    with pytest.raises(ImageLoadError, match=r"notes\.jpg.*not an image"):
        load_image(p)


def test_folder(tmp_path):
    d = tmp_path / "photos.jpg"
    d.mkdir()
    with pytest.raises(ImageLoadError, match=r"photos\.jpg.*folder"):
        load_image(d)


def test_missing_file(tmp_path):
    with pytest.raises(ImageLoadError, match=r"nope\.png.*no such file"):
        load_image(tmp_path / "nope.png")


def test_errors_are_value_errors(tmp_path):
    p = tmp_path / "x.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError):
        load_image(p)


def test_as_loaded_arrays():
    gray = as_loaded(np.zeros((5, 6), np.uint8))
    assert gray.pixels.shape == (5, 6, 3)
    rgba = as_loaded(np.zeros((5, 6, 4), np.uint8))
    assert rgba.pixels.shape == (5, 6, 3)
    with pytest.raises(ValueError, match="uint8"):
        as_loaded(np.zeros((5, 6, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        as_loaded(np.zeros((0, 6, 3), np.uint8))
    with pytest.raises(TypeError):
        as_loaded(42)


# ----------------------------------------------------------------- end to end on odd sizes
@pytest.mark.parametrize("shape", [(1, 40), (40, 1)])
def test_thin_image_classify_and_detect_end_to_end(tmp_path, tiny_encoder, shape):
    from ovtools.pipelines import ClassifyPipeline, DetectPipeline

    p = tmp_path / "thin.png"
    Image.fromarray(np.full((*shape, 3), 90, np.uint8)).save(p)
    clf = ClassifyPipeline(encoder=tiny_encoder, labels="red, blue", templates="single")
    res = clf(p)
    assert res.class_id.shape[0] == 1
    det = DetectPipeline(encoder=tiny_encoder, labels=list(CANONICAL_NEGATIVES), templates="single",
                         proposals="windows", scoring="crop", score_threshold=0.0, min_box_size=1.0,
                         max_proposals=30)
    d = det(p)
    assert d.image_size == shape
    if len(d):
        assert (d.xyxy[:, [0, 2]] <= shape[1] + 1e-3).all() and (d.xyxy[:, [1, 3]] <= shape[0] + 1e-3).all()


def test_large_image_detect_boxes_in_original_pixels(tmp_path, tiny_encoder):
    from ovtools.pipelines import DetectPipeline

    p = tmp_path / "big.jpg"
    Image.fromarray(_gradient(4000, 6000)).save(p, quality=70)
    # Labels = the canonical negatives, so no negative is left to beat: random weights still detect.
    det = DetectPipeline(encoder=tiny_encoder, labels=list(CANONICAL_NEGATIVES), templates="single",
                         proposals="windows", scoring="crop", max_side=512, score_threshold=0.0,
                         max_proposals=30, class_agnostic_iou=None)
    d = det(p)
    assert d.image_size == (4000, 6000)
    assert len(d) > 0
    assert d.xyxy[:, 2].max() > 1000 and d.xyxy[:, 2].max() <= 6000 + 1e-3
    assert d.xyxy[:, 3].max() <= 4000 + 1e-3


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    p = tmp_path / "bomb.png"
    Image.new("RGB", (100, 100)).save(p)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageLoadError, match=r"bomb\.png.*too large"):
        load_image(p)


def test_pixels_are_writable(tmp_path):
    """Callers draw on the returned pixels (cv2.rectangle needs a writable array)."""
    p = tmp_path / "w.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(p)
    assert load_image(p).pixels.flags["WRITEABLE"]
    assert load_image(p, max_side=4).pixels.flags["WRITEABLE"]
