"""Screenshot a Snakemake HTML report in headless Chromium: its first page and one figure page.

Why: `snakemake --report report.html` writes a single-file JavaScript app, so only a real browser
shows what a user sees (unrendered captions, broken images). Usage:

    python tools/report_screenshots.py REPORT.html OUTDIR [--figure fig_compression] [--browser PATH]

Writes OUTDIR/report_first_page.png and OUTDIR/report_<figure>.png. Without a Chromium (neither
--browser nor chromium / chromium-browser / google-chrome on PATH) it prints one 'skipped' line
and exits 0, so it can run on machines without a browser. Bad input (report missing or not HTML,
unknown figure, a --browser that does not exist): one line on stderr, exit 2; a browser that
fails or hangs: one line, exit 1.

The report app (Snakemake 9) keeps its navigation in React state only: no URL hash or query
opens a result. So the figure page is shot from a temporary copy of the report with one
script appended that calls the app's own `app.setView(...)`, the call its "eye" button makes.
The PNG of a figure is preferred to its PDF: headless Chromium draws PDFs as an empty grey frame.
"""

import argparse
import json
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

from igkd.io import WriteError, atomic_path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
SKIP_LINE = "report_screenshots: no chromium found; skipped"
DEFAULT_FIGURE = "fig_compression"
DEFAULT_SIZE = (1600, 1000)
# Virtual time lets React, the in-page Tailwind CSS build and the embedded images settle first.
VIRTUAL_TIME_MS = 15_000
BROWSER_TIMEOUT_S = 180
HTML_SNIFF_BYTES = 4096
FIRST_PAGE = "report_first_page.png"
EXIT_BAD_INPUT = 2
EXIT_BROWSER_FAILED = 1
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel
PROBE_URL = 'data:text/html,<p id="h"></p><script>h.textContent = innerHeight</script>'

# Appended to the copy for the figure page; waits until the App component has set `app`.
SHOW_RESULT_JS = """<script>
(function () {
  const view = __VIEW__;
  const timer = setInterval(function () {
    if (typeof app === "undefined" || !app) { return; }
    clearInterval(timer);
    app.setView(view);
  }, 50);
})();
</script>
"""


class BadInput(ValueError):
    """A report or figure the user named that cannot be used (exit 2)."""


def find_browser(explicit: str | None = None) -> str | None:
    """Path of the Chromium to drive: --browser if given (a path or a name on PATH), else the first
    of BROWSERS on PATH, else None."""
    if explicit:
        return shutil.which(explicit) or (explicit if Path(explicit).is_file() else None)
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def read_report(path: Path) -> str:
    """Report text, after checking it exists and looks like HTML."""
    if not path.is_file():
        raise BadInput(f"{path}: report not found (expected the file written by snakemake --report)")
    with path.open("rb") as handle:
        head = handle.read(HTML_SNIFF_BYTES).lower()
    if b"<html" not in head and b"<!doctype html" not in head:
        raise BadInput(f"{path}: not an HTML file (no <html> or <!DOCTYPE html> near the start)")
    return path.read_text(encoding="utf-8", errors="replace")


def report_var(html: str, name: str, path: Path):
    """The JSON value of `var <name> = ...;` in the report's <script id="<name>"> block."""
    block = html.find(f'<script id="{name}">')
    marker = f"var {name} = "
    start = html.find(marker, block) if block >= 0 else -1
    if start < 0:
        raise BadInput(f"{path}: no '{name}' data block; expected an HTML report from snakemake --report")
    try:
        value, _ = json.JSONDecoder().raw_decode(html, start + len(marker))
    except json.JSONDecodeError as error:
        raise BadInput(f"{path}: '{name}' data block is not valid JSON ({error.msg})") from None
    return value


def pick_result(results: dict, figure: str) -> str | None:
    """Report path of the result named by figure (rule name, 'figure' label, file stem, name or
    path); an image is preferred over the PDF of the same figure because headless Chromium does
    not render PDFs in an iframe."""
    matches = [
        path
        for path, entry in results.items()
        if figure
        in (
            entry.get("job_properties", {}).get("rule"),
            (entry.get("labels") or {}).get("figure"),
            Path(path).stem,
            Path(path).name,
            path,
        )
    ]
    return min(matches, key=lambda p: (not results[p]["mime_type"].startswith("image/"), p), default=None)


def figure_view(html: str, report: Path, figure: str) -> dict:
    """The app.setView(...) argument that opens figure's result page, as the eye button does."""
    results = report_var(html, "results", report)
    path = pick_result(results, figure)
    if path is None:
        rules = sorted({entry.get("job_properties", {}).get("rule", "?") for entry in results.values()})
        raise BadInput(f"{report}: no result for figure '{figure}'; rules with results: {', '.join(rules)}")
    category = subcategory = None
    for cat, subcats in report_var(html, "categories", report).items():
        for sub, paths in subcats.items():
            if path in paths:
                category, subcategory = cat, sub
    mime = results[path]["mime_type"]
    content = "img" if mime.startswith("image/") else "html" if mime == "text/html" else "pdf"
    return {
        "navbarMode": "resultinfo",
        "resultPath": path,
        "content": content,
        "contentPath": results[path]["data_uri"],
        "category": category,
        "subcategory": subcategory,
    }


def with_view(html: str, view: dict) -> str:
    """Report HTML with a script that opens view once the app has started."""
    script = SHOW_RESULT_JS.replace("__VIEW__", json.dumps(view).replace("</", "<\\/"))
    end = html.lower().rfind("</body>")
    return html + script if end < 0 else html[:end] + script + html[end:]


def run_chromium(browser: str, window: tuple[int, int], *args: str) -> subprocess.CompletedProcess:
    """One headless Chromium run with a throw-away profile and the given window size."""
    with tempfile.TemporaryDirectory(prefix="report_screenshots_") as profile:
        command = [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
            # Finish every paint before virtual time moves on, or a shot can show half-styled layers.
            "--run-all-compositor-stages-before-draw",
            f"--user-data-dir={profile}",
            f"--window-size={window[0]},{window[1]}",
            f"--virtual-time-budget={VIRTUAL_TIME_MS}",
            *args,
        ]
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{browser}: no answer within {BROWSER_TIMEOUT_S} s ({args[-1][:80]})") from None


def frame_height(browser: str, size: tuple[int, int]) -> int:
    """Window height that headless Chromium keeps for a window frame it does not draw.

    New headless lays the page out at window height minus this frame but shoots the whole
    window, so pages sized to 100vh (the report's sidebar) end above a blank band. Measured,
    not assumed: 143 px for Chromium 156 on Linux, 0 for older headless modes."""
    proc = run_chromium(browser, size, "--dump-dom", PROBE_URL)
    match = re.search(r'id="h">(\d+)<', proc.stdout)
    return max(size[1] - int(match[1]), 0) if match else 0


def crop_png_rows(data: bytes, height: int) -> bytes:
    """The top height rows of a non-interlaced PNG. Each row is filtered only against the rows
    above it, so truncating the decompressed image data is a valid PNG; stdlib only."""
    chunks, pos = [], len(PNG_MAGIC)
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append((data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]))
        pos += length + 12
    ihdr = chunks[0][1]
    width, old_height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    if interlace or height >= old_height:
        return data
    row_bytes = 1 + (width * PNG_CHANNELS[color] * depth + 7) // 8
    pixels = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))[: row_bytes * height]

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    out = [PNG_MAGIC, chunk(b"IHDR", struct.pack(">I", width) + struct.pack(">I", height) + ihdr[8:])]
    for kind, body in chunks[1:]:
        if kind == b"IDAT" and pixels is not None:
            out.append(chunk(b"IDAT", zlib.compress(pixels)))
            pixels = None
        elif kind != b"IDAT":
            out.append(chunk(kind, body))
    return b"".join(out)


def screenshot(url: str, out: Path, browser: str, size: tuple[int, int] = DEFAULT_SIZE) -> Path:
    """Shoot url to out (PNG) as a size viewport shows it; written to a temp file, then renamed."""
    out = Path(out)
    window = (size[0], size[1] + frame_height(browser, size))
    with atomic_path(out) as tmp:
        proc = run_chromium(browser, window, f"--screenshot={tmp}", url)
        if proc.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"{browser}: screenshot of {url} failed (exit {proc.returncode}): {last}")
        tmp.write_bytes(crop_png_rows(tmp.read_bytes(), size[1]))
    return out


def parse_size(text: str) -> tuple[int, int]:
    """'W,H' or 'WxH' -> (W, H)."""
    match = re.fullmatch(r"\s*(\d+)\s*[,x]\s*(\d+)\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"--size: expected WIDTH,HEIGHT in pixels, got {text!r}")
    return int(match[1]), int(match[2])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="report.html from snakemake --report")
    parser.add_argument("outdir", type=Path, help="folder for the PNG screenshots")
    parser.add_argument("--figure", default=DEFAULT_FIGURE, help="rule, figure label or file of the figure page")
    parser.add_argument("--browser", help=f"Chromium executable (default: first of {', '.join(BROWSERS)} on PATH)")
    parser.add_argument("--size", type=parse_size, default=DEFAULT_SIZE, help="viewport WIDTH,HEIGHT (1600,1000)")
    args = parser.parse_args(argv)
    try:
        html = read_report(args.report)
        view = figure_view(html, args.report, args.figure)
    except BadInput as error:
        print(f"report_screenshots: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    browser = find_browser(args.browser)
    if browser is None and args.browser:
        print(f"report_screenshots: --browser {args.browser}: no such executable", file=sys.stderr)
        return EXIT_BAD_INPUT
    if browser is None:
        print(SKIP_LINE)
        return 0
    args.outdir.mkdir(parents=True, exist_ok=True)
    figure_png = args.outdir / f"report_{re.sub(r'[^A-Za-z0-9_.-]+', '_', args.figure)}.png"
    try:
        screenshot(args.report.resolve().as_uri(), args.outdir / FIRST_PAGE, browser, args.size)
        with tempfile.TemporaryDirectory(prefix="report_screenshots_") as folder:
            page = Path(folder) / "report_figure.html"
            page.write_text(with_view(html, view), encoding="utf-8")
            screenshot(page.as_uri(), figure_png, browser, args.size)
    except (RuntimeError, WriteError) as error:
        print(f"report_screenshots: {error}", file=sys.stderr)
        return EXIT_BROWSER_FAILED
    print(f"report_screenshots: wrote {args.outdir / FIRST_PAGE} and {figure_png} ({view['resultPath']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
