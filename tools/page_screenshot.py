"""Drive `postergenre serve`'s page in headless Chromium (Debian's `chromium`, through
Playwright; no browser is downloaded): upload a poster, wait for the scores, read what the page
shows, record every request it makes, save a screenshot. The browser test uses `drive`; run
as a script it makes the screenshot in docs/explain.md:

    python tools/page_screenshot.py --model models/head --poster POSTER --out docs/serve.png

(in the repository whose data the model was trained on; it starts the server on a free port of
127.0.0.1 and stops it after).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

CHROMIUM = ("chromium", "chromium-browser")


def chromium_path() -> str | None:
    for name in CHROMIUM:
        found = shutil.which(name)
        if found:
            return found
    return None


def drive(
    url: str,
    poster: Path,
    screenshot: Path | None = None,
    genre: str | None = None,
    width: int = 1100,
    timeout_ms: int = 60_000,
    browse: bool = False,
) -> dict[str, Any]:
    """Open the page at `url`, upload `poster`, wait for its scores and heat map; return what
    the page shows (`rows`: genre names in order, `named`, `thresholds`: how many marks,
    `heat_map_width`: the heat map image's natural width, `neighbours`; with `browse`, what
    the test-split view shows) and `requests`: every URL the pages asked for."""
    from playwright.sync_api import sync_playwright

    binary = chromium_path()
    if binary is None:
        raise RuntimeError("no chromium on PATH (Debian: apt-get install chromium)")
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=binary, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url, timeout=timeout_ms)
            page.set_input_files("#file", str(poster))
            page.wait_for_selector("#result:not([hidden]) .row", timeout=timeout_ms)
            if genre:
                page.click(f".row:has(.name:text-is('{genre}'))")
            page.wait_for_function(
                "() => { const i = document.getElementById('heat');"
                " return i.complete && i.naturalWidth > 0; }",
                timeout=timeout_ms,
            )
            page.wait_for_function(
                "() => [...document.querySelectorAll('#neighbours img')].every(i => i.complete)",
                timeout=timeout_ms,
            )
            shown = page.evaluate("""() => ({
                rows: [...document.querySelectorAll('.row .name')].map(e => e.textContent),
                named: document.getElementById('named').textContent,
                thresholds: document.querySelectorAll('.row .threshold').length,
                heat_map_width: document.getElementById('heat').naturalWidth,
                heat_title: document.getElementById('heat-title').textContent,
                error: document.getElementById('error').textContent,
                warning: document.getElementById('warning').textContent,
                neighbours: document.querySelectorAll('#neighbours .nb').length,
            })""")
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                jpeg = screenshot.suffix.lower() in (".jpg", ".jpeg")
                page.screenshot(
                    path=str(screenshot),
                    full_page=True,
                    type="jpeg" if jpeg else "png",
                    **({"quality": 80} if jpeg else {}),
                )
            if browse:  # the second view: the test split, true against predicted genres
                page.goto(url.rstrip("/") + "/browse", timeout=timeout_ms)
                page.wait_for_selector("#grid .poster", timeout=timeout_ms)
                page.wait_for_function(
                    "() => [...document.querySelectorAll('#grid img')].every(i => i.complete)",
                    timeout=timeout_ms,
                )
                shown["browse"] = page.evaluate("""() => ({
                    posters: document.querySelectorAll('#grid .poster').length,
                    pictures: [...document.querySelectorAll('#grid img')]
                        .filter(i => i.naturalWidth > 0).length,
                    summary: document.getElementById('summary').textContent,
                    error: document.getElementById('error').textContent,
                })""")
        finally:
            browser.close()
    return {**shown, "requests": requests}


def main(argv: list[str] | None = None) -> int:
    from postergenre.apps.web import make_server

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--poster", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="the screenshot (.png or .jpg)")
    parser.add_argument("--genre", default=None, help="click this genre's row before the shot")
    parser.add_argument("--width", type=int, default=1100)
    args = parser.parse_args(argv)
    server = make_server(args.model, port=0)  # 127.0.0.1
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        shown = drive(f"http://{host}:{port}/", args.poster, args.out, args.genre, args.width)
    finally:
        server.shutdown()
        server.server_close()
    outside = [u for u in shown["requests"] if not u.startswith(f"http://{host}:{port}/")]
    print(
        f"{args.out}: {args.out.stat().st_size / 1024:.0f} KB; named: {shown['named']}; "
        f"{len(shown['requests'])} requests, {len(outside)} outside {host}:{port}"
    )
    return 1 if outside else 0


if __name__ == "__main__":
    sys.exit(main())
