"""plots: `dvc plots show` as a page that draws offline (`make plots`).

DVC's own page loads Vega, Vega-Lite and Vega-Embed from a CDN, so without a network every
interactive chart is blank. This writes an HTML template holding those libraries inline (the
bundle that the pinned `vl-convert-python` package ships, nothing fetched) and runs
`dvc plots show --html-template` with it: `dvc_plots/index.html` then needs no network. The
template is made once per installed bundle version, under `.cache/plots/` (gitignored).
No stage runs this module: changing it re-runs nothing.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from postergenre.core.atomic import atomic_path
from postergenre.core.paths import repo_root
from postergenre.runtime import entry

# The Vega-Lite major DVC's templates are written for (their `$schema` is vega-lite v5).
VEGA_LITE = "5.21"
# what the bundle runs: the three libraries as the globals DVC's chart scripts call
GLOBALS = "window.vegaEmbed = vegaEmbed; window.vegaLite = vegaLite; window.vega = vega;"
PAGE = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>postergenre plots</title>
  <!-- Vega, Vega-Lite {vega_lite} and Vega-Embed, from vl-convert-python {bundle} -->
  <script>{libraries}</script>
  <style>body {{ font-family: sans-serif; }} table {{ border-spacing: 15px; }}</style>
</head>
<body>
  {{plot_divs}}
</body>
</html>
"""


def template(cache: Path) -> Path:
    """The offline template for the installed bundle, written whole the first time."""
    bundle = version("vl-convert-python")
    path = cache / f"offline-{bundle}-vl{VEGA_LITE}.html"
    if not path.exists():
        import vl_convert

        libraries = vl_convert.javascript_bundle(GLOBALS, vl_version=VEGA_LITE)
        if "</script" in libraries.lower():  # would end the inline script early
            raise ValueError(f"vl-convert-python {bundle}'s bundle cannot be inlined")
        page = PAGE.format(vega_lite=VEGA_LITE, bundle=bundle, libraries=libraries)
        with atomic_path(path) as tmp:
            tmp.write_text(page, encoding="utf-8")
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="dvc_plots", help="folder of the page (index.html)")
    parser.add_argument(
        "dvc_args", nargs=argparse.REMAINDER, help="after `--`: more options for `dvc plots show`"
    )


NEEDS_PARAMS = False


def run(args: argparse.Namespace, params: dict | None) -> None:
    dvc = shutil.which("dvc")
    if dvc is None:
        raise FileNotFoundError("dvc is not on PATH (make plots puts the venv's first)")
    page = template(repo_root() / ".cache" / "plots")
    extra = [a for a in args.dvc_args if a != "--"]
    command = [dvc, "plots", "show", "--html-template", str(page), "--out", args.out, *extra]
    if subprocess.call(command) != 0:
        raise SystemExit(1)
    print(f"offline plots: {Path(args.out) / 'index.html'}", flush=True)


if __name__ == "__main__":
    sys.exit(entry.main("plots", __doc__, add_arguments, run, needs_params=False))
