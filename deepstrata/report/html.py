"""HTML pieces for self-contained pages: escaping, numbers, tables, embedded images, the page.

Every string put in a page goes through :func:`esc` unless it is :class:`Html` (markup
built here from escaped parts). Pages have inline CSS, images as data URIs, no script.

>>> esc('<b class="x">')
'&lt;b class=&quot;x&quot;&gt;'
>>> fmt(1234), fmt(0.98554), fmt(3.2e-05), fmt(float("nan"))
('1,234', '0.9855', '3.2e-05', '—')
"""

from __future__ import annotations

import base64
import html
import math
import numbers
from dataclasses import dataclass


class Html(str):
    """Markup that is already safe; every other string put in a page is escaped."""


# Nothing but inline style and embedded images may load, even if escaping ever failed.
CSP = Html(
    '<meta http-equiv="Content-Security-Policy" '
    "content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">"
)


def esc(value: object) -> Html:
    return value if isinstance(value, Html) else Html(html.escape(str(value), quote=True))


def fmt(value: object, digits: int = 4) -> str:
    """Numbers for people: ``1,234`` ``0.9855`` ``3.2e-05``; missing or NaN is ``—``."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isnan(value):
            return "—"
        magnitude = abs(value)
        if magnitude == math.inf:
            return str(value)
        if value == 0:
            return f"{0.0:.{digits}f}"
        if magnitude >= 1e5 or magnitude < 1e-3:
            return f"{value:.{digits - 1}g}"
        return f"{value:,.{digits if magnitude < 10 else 2}f}"
    return str(value)


def table(header: list, rows: list[list], *, numeric: tuple[int, ...] = (), wide=False) -> Html:
    """An HTML table; cells are escaped unless they are :class:`Html`."""

    def cell(tag: str, index: int, value: object) -> str:
        text = value if isinstance(value, Html) else esc(fmt(value))
        return f"<{tag}{' class=num' if index in numeric else ''}>{text}</{tag}>"

    head = "".join(cell("th", i, esc(h)) for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>" for row in rows
    )
    return Html(
        f'<div class="scroll"><table{" class=wide" if wide else ""}><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def image(png: bytes, alt: str, caption: str = "", mime: str = "image/png") -> Html:
    data = base64.b64encode(png).decode("ascii")
    note = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return Html(f'<figure><img src="data:{mime};base64,{data}" alt="{esc(alt)}">{note}</figure>')


def note(text: str) -> Html:
    return Html(f'<p class="note">{esc(text)}</p>')


@dataclass
class Section:
    key: str
    title: str
    body: str


CSS = """
:root{--ink:#111827;--muted:#6b7280;--line:#e5e7eb;--soft:#f9fafb;--accent:#2563eb}
*{box-sizing:border-box}
body{font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--ink);margin:0 auto;max-width:1080px;padding:24px 28px 48px}
header h1{font-size:24px;margin:0 0 2px}
h1 code{font-size:22px;background:var(--soft);padding:1px 6px;border-radius:4px}
.subtitle{color:var(--muted);margin:0 0 16px}
nav ol{display:flex;flex-wrap:wrap;gap:4px 18px;padding:10px 14px;margin:0 0 8px;list-style:none;
background:var(--soft);border:1px solid var(--line);border-radius:6px}
nav a{color:var(--accent);text-decoration:none}
section{border-top:1px solid var(--line);padding:6px 0 12px}
h2{font-size:18px;margin:14px 0 8px}
h3{font-size:14px;margin:14px 0 6px;color:#374151}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:6px 0 12px}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:118px;background:var(--soft)}
.card .value{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums}
.card .label{color:var(--muted);font-size:12px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:6px 0}
dt{color:var(--muted)}dd{margin:0}
.scroll{overflow-x:auto;margin:4px 0 10px}
table{border-collapse:collapse;font-size:13px}
th,td{padding:3px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:nth-child(even){background:#fcfcfd}
.bar{display:inline-block;height:10px;background:#93c5fd;border-radius:2px;min-width:1px}
figure{margin:8px 0 14px}
figure img{max-width:100%;height:auto;border:1px solid var(--line);border-radius:4px}
figcaption{color:var(--muted);font-size:12px}
.grid{display:flex;flex-wrap:wrap;gap:8px 24px;align-items:flex-start}
.note{color:var(--muted)}
.missing{color:#9ca3af}
.path{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;word-break:break-all}
.thumb{width:auto;height:auto;max-width:72px;max-height:72px;border-radius:3px;display:block}
.bad{color:#b91c1c;font-weight:600}
details{margin:6px 0}summary{cursor:pointer;color:var(--accent)}
pre.card{white-space:pre-wrap;font-size:12px;background:var(--soft);padding:10px;border-radius:6px}
footer{margin-top:24px;color:var(--muted);font-size:12px}
""".replace("\n", "")


def standalone_page(title: str, heading: Html, subtitle: str, sections: list[Section]) -> str:
    """A whole self-contained page (explain, attack, search): the report's style and
    Content-Security-Policy, a heading and subtitle, a list of contents, the sections."""
    contents = "".join(f'<li><a href="#{s.key}">{esc(s.title)}</a></li>' for s in sections)
    body = "".join(
        f'<section id="{s.key}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{CSP}<style>{CSS}</style></head><body><header><h1>{heading}</h1>"
        f'<p class="subtitle">{esc(subtitle)}</p></header>'
        f"<nav><ol>{contents}</ol></nav><main>{body}</main></body></html>\n"
    )
