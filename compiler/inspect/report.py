"""report.html: one self-contained page (pictures inlined as data: URIs, no network, no files
beside it) showing the pictures next to the spec's per-layer table from ``blueprint explain``.

A small script records, once the page has loaded, how many pictures decoded and their natural
widths in ``<body data-images-loaded=... data-image-widths=...>``, so a headless browser can
check the page as a person would see it.
"""

from __future__ import annotations

import base64
import html
from typing import Sequence

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
pre { font-size: 12px; background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
.row { display: flex; gap: 1.5em; align-items: flex-start; flex-wrap: wrap; }
.row > .table { flex: 0 1 38%; min-width: 20em; }
.row > .pictures { flex: 1 1 58%; min-width: 24em; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
.note { color: #734; }
"""

CHECK = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute("data-images", String(imgs.length));
  document.body.setAttribute("data-images-loaded", String(ok.length));
  document.body.setAttribute("data-image-widths", imgs.map(function (i) { return i.naturalWidth; }).join(" "));
});
"""


def img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def layer_table(spec) -> tuple[list[str], list[str]]:
    """The explain table's header lines and one line per layer (same text as ``blueprint explain``)."""
    from blueprint.commands.explain import layer_table as explain_table

    lines = explain_table(spec)
    return lines[:2], lines[2:]


def render(*, spec, summary: Sequence[str], notes: Sequence[str], explain: Sequence[str],
           scores_png: bytes, lens_png: bytes | None, attention_pngs: dict[int, bytes]) -> str:
    """The whole page as text."""
    header, layer_lines = layer_table(spec)
    esc = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>blueprint inspect: {esc(spec.name)}</title><style>{STYLE}</style></head><body>",
        f"<h1>blueprint inspect: {esc(spec.name)}</h1>",
        "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in summary) + "</ul>",
    ]
    parts += [f'<p class="note">{esc(n)}</p>' for n in notes]
    parts += ['<h2>Head scores</h2><div class="row">',
              f'<div class="table"><pre>{esc(chr(10).join(explain))}</pre></div>',
              f'<div class="pictures">{img(scores_png, "head scores")}',
              "<p>previous-token: mean attention from position i to i-1; for each position i whose "
              "token occurred earlier (j its most recent occurrence), duplicate-token = mean attention "
              "i&#8594;j and induction = mean attention i&#8594;j+1; entropy: mean over queries, in nats.</p>",
              "</div></div>"]
    if lens_png is not None:
        parts += ["<h2>Logit lens</h2>", "<p>The final norm and the head applied to the residual stream "
                  "after each layer; the last row is the model's own prediction.</p>", img(lens_png, "logit lens")]
    parts.append("<h2>Attention by layer</h2>")
    for layer, png in attention_pngs.items():
        row = "\n".join([*header, layer_lines[layer]])
        parts += [f'<h3 id="layer{layer}">Layer {layer}</h3><div class="row">',
                  f'<div class="table"><pre>{esc(row)}</pre></div>',
                  f'<div class="pictures">{img(png, f"attention, layer {layer}")}</div></div>']
    parts += [f"<script>{CHECK}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"
