"""tools/report_screenshots.py: browser lookup, the documented skip without Chromium, one-line
errors for bad input, how a figure page is chosen, and (only where Chromium is installed) a real
screenshot."""

import importlib.util
import json
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "report_screenshots.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MIN_PNG_BYTES = 1000  # a blank or failed shot is a few hundred bytes; text on a page is more


def load_tool():
    spec = importlib.util.spec_from_file_location("report_screenshots", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rs = load_tool()
HAVE_CHROMIUM = rs.find_browser() is not None


def fake_report(path: Path) -> Path:
    """The data blocks of a Snakemake report that the tool reads, for one figure in PDF and PNG."""
    results = {
        f"results/digits/figures/compression.{fmt}": {
            "labels": {"figure": "compression", "format": fmt.upper()},
            "mime_type": mime,
            "job_properties": {"rule": "fig_compression"},
            "data_uri": f"data:{mime};base64,AAAA",
        }
        for fmt, mime in (("pdf", "application/pdf"), ("png", "image/png"))
    }
    categories = {"Students vs compression": {"Other": sorted(results)}}
    path.write_text(
        "<!DOCTYPE html>\n<html><body>\n"
        f'<script id="results">\nvar results = {json.dumps(results)};\n</script>\n'
        f'<script id="categories">\nvar categories = {json.dumps(categories)};\n</script>\n'
        "</body></html>\n"
    )
    return path


@pytest.fixture
def no_browser(monkeypatch):
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(rs.shutil, "which", lambda name: None)


def test_find_browser_is_none_without_chromium_on_path(no_browser):
    assert rs.find_browser() is None


def test_find_browser_takes_the_first_known_name_on_path(monkeypatch):
    monkeypatch.setattr(rs.shutil, "which", lambda name: f"/opt/bin/{name}" if name == "google-chrome" else None)
    assert rs.find_browser() == "/opt/bin/google-chrome"


def test_main_without_chromium_prints_the_skip_line_and_returns_0(no_browser, tmp_path, capsys):
    assert rs.main([str(fake_report(tmp_path / "report.html")), str(tmp_path / "shots")]) == 0
    assert capsys.readouterr().out.strip() == rs.SKIP_LINE
    assert not (tmp_path / "shots").exists()


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [("missing.html", None, "report not found"), ("report.html", "just text\n", "not an HTML file")],
)
def test_bad_report_exits_2_with_one_line_naming_the_file(no_browser, tmp_path, capsys, name, text, expected):
    report = tmp_path / name
    if text is not None:
        report.write_text(text)
    assert rs.main([str(report), str(tmp_path / "shots")]) == rs.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert str(report) in err and expected in err


def test_unknown_figure_exits_2_and_lists_the_rules(no_browser, tmp_path, capsys):
    report = fake_report(tmp_path / "report.html")
    assert rs.main([str(report), str(tmp_path), "--figure", "fig_nope"]) == rs.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "fig_nope" in err and "fig_compression" in err


def test_html_without_report_data_exits_2(no_browser, tmp_path, capsys):
    report = tmp_path / "page.html"
    report.write_text("<html><body>hi</body></html>")
    assert rs.main([str(report), str(tmp_path)]) == rs.EXIT_BAD_INPUT
    assert "no 'results' data block" in capsys.readouterr().err


def test_missing_explicit_browser_exits_2(tmp_path, capsys):
    report = fake_report(tmp_path / "report.html")
    assert rs.main([str(report), str(tmp_path), "--browser", str(tmp_path / "nochrome")]) == rs.EXIT_BAD_INPUT
    assert "nochrome" in capsys.readouterr().err


@pytest.mark.parametrize("figure", ["fig_compression", "compression", "compression.png"])
def test_figure_page_opens_the_png_result_with_its_category(tmp_path, figure):
    report = fake_report(tmp_path / "report.html")
    view = rs.figure_view(report.read_text(), report, figure)
    assert view["resultPath"] == "results/digits/figures/compression.png"
    assert (view["content"], view["navbarMode"]) == ("img", "resultinfo")
    assert (view["category"], view["subcategory"]) == ("Students vs compression", "Other")


def test_view_script_goes_before_the_closing_body_tag():
    page = rs.with_view("<html><body><p>x</p></body></html>", {"resultPath": "a</script>b"})
    assert page.endswith("</body></html>") and "app.setView(view)" in page
    assert "a</script>b" not in page  # a path cannot close the injected script early


def tiny_png(width: int, rows: list[int]) -> bytes:
    """A grey 8-bit PNG with one value per row, written by hand (no imaging library)."""
    raw = b"".join(b"\x00" + bytes([value]) * width for value in rows)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, len(rows), 8, 0, 0, 0, 0)
    return PNG_MAGIC + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def png_rows(data: bytes) -> tuple[int, list[int]]:
    """(height, first pixel of each row) of a PNG from tiny_png, checking every chunk's CRC."""
    pos, idat, height = len(PNG_MAGIC), b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind + body)
        height = struct.unpack(">I", body[4:8])[0] if kind == b"IHDR" else height
        idat += body if kind == b"IDAT" else b""
        pos += length + 12
    raw = zlib.decompress(idat)
    row = len(raw) // height
    return height, [raw[i * row + 1] for i in range(height)]


def test_crop_keeps_the_top_rows_as_a_valid_png():
    cropped = rs.crop_png_rows(tiny_png(5, [10, 20, 30, 40]), 2)
    assert png_rows(cropped) == (2, [10, 20])
    assert rs.crop_png_rows(tiny_png(5, [10, 20]), 3) == tiny_png(5, [10, 20])  # never grows


def test_frame_height_is_window_minus_what_the_page_sees(monkeypatch):
    def fake_run(browser, window, *args):
        return subprocess.CompletedProcess(args, 0, stdout='<html><body><p id="h">857</p></body></html>')

    monkeypatch.setattr(rs, "run_chromium", fake_run)
    assert rs.frame_height("chromium", (1600, 1000)) == 143


@pytest.mark.skipif(not HAVE_CHROMIUM, reason="no chromium installed")
def test_screenshot_of_a_local_page_is_a_png(tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<!DOCTYPE html><html><body><h1>report screenshot test</h1></body></html>")
    out = rs.screenshot(page.as_uri(), tmp_path / "page.png", rs.find_browser(), (400, 300))
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > MIN_PNG_BYTES
    assert struct.unpack(">II", data[16:24]) == (400, 300)  # the viewport asked for, frame band cropped
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".png"] == ["page.png"]  # no temp file left
