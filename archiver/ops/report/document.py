"""The report as one HTML file: self-contained, inert, printable.

Nothing in it is fetched or run: no script, no link, no external resource, and a
Content-Security-Policy that allows only its own style and ``data:`` images (the
screenshot), so that a value that slipped through escaping still could not load or run
anything.  Every value is escaped (:func:`html.escape`, quotes included) after the
characters that reorder or hide text (BiDi overrides, controls) are shown escaped
(:func:`archiver.core.text.printable`): a page title or a URL is whatever its site chose.
URLs are text, never links.

Each value shown carries ``data-fact`` naming its fact, and the whole facts document is
at the end in ``<pre id="archiver-facts">`` (JSON, escaped): a program compares that,
a person reads the rest, and both say the same.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable
from typing import Any

from archiver.core.text import counted, printable
from archiver.ops.report import media
from archiver.ops.report.recipes import steps

POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'none'; "
    "base-uri 'none'"
)

STYLE = """
@page { size: A4; margin: 16mm 14mm 18mm 14mm; }
html { color-scheme: light; }
body { font: 10pt/1.45 "DejaVu Sans", "Liberation Sans", Arial, sans-serif; color: #111;
  max-width: 62rem; margin: 2rem auto; padding: 0 1rem; background: #fff;
  font-variant-ligatures: none; }
h1 { font-size: 18pt; margin: 0 0 .2em; }
h2 { font-size: 13pt; margin: 1.6em 0 .4em; padding-bottom: .15em; border-bottom: 1px solid #888; }
h3 { font-size: 11pt; margin: 1.1em 0 .3em; }
p { margin: .4em 0; }
table { border-collapse: collapse; width: 100%; margin: .4em 0 .8em; }
th, td { text-align: left; vertical-align: top; padding: 3px 6px; border-bottom: 1px solid #ddd; }
table.facts th { width: 26%; font-weight: 600; color: #333; }
table.list { table-layout: fixed; }
table.list th { font-weight: 600; color: #333; border-bottom: 1px solid #888; }
.hex, code, pre, .url { font-family: "DejaVu Sans Mono", "Liberation Mono", monospace; }
.hex, .url, td { overflow-wrap: anywhere; word-break: break-word; }
.hex { font-size: 8.5pt; word-break: break-all; }
.url { font-size: 9pt; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; word-break: break-all; font-size: 8.5pt;
  background: #f5f5f5; border: 1px solid #ccc; padding: .5em .7em; margin: .3em 0 .6em; }
.verdict { border: 2px solid; padding: .6em .9em; margin: 1em 0; }
.verdict.ok { border-color: #1b6e20; background: #eef7ee; }
.verdict.failed { border-color: #a10000; background: #fbeeee; }
.verdict strong { font-size: 12pt; }
.ok-word { color: #1b6e20; font-weight: 600; }
.failed-word { color: #a10000; font-weight: 600; }
.muted { color: #555; }
.small { font-size: 8.5pt; }
figure { margin: .5em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #999; }
figcaption { font-size: 9pt; color: #333; margin-top: .3em; }
ul.problems li { margin: .2em 0; }
td ul, td ol { margin: 0; padding-left: 1.3em; }
@media print {
  body { margin: 0; max-width: none; padding: 0; }
  h2, h3 { break-after: avoid; }
  tr, figure, .verdict, .step { break-inside: avoid; }
  #facts-appendix { break-before: page; }
}
"""


def e(value: Any) -> str:
    """A value as text in HTML: controls and reordering marks shown escaped, then escaped."""
    if value is None:
        return ""
    return html.escape(printable(str(value)), quote=True)


def _fact(name: str, value: Any, *, cls: str = "", shown: str | None = None) -> str:
    """A table cell holding a fact: ``data-fact`` names it; ``shown`` is already HTML."""
    css = f' class="{cls}"' if cls else ""
    text = shown if shown is not None else (e(value) if value not in (None, "") else "")
    if not text:
        text = '<span class="muted">not recorded</span>'
    return f'<td data-fact="{e(name)}"{css}>{text}</td>'


def _row(label: str, name: str, value: Any, **how: Any) -> str:
    return f"<tr><th>{e(label)}</th>{_fact(name, value, **how)}</tr>"


def _bytes(n: Any) -> str:
    if not isinstance(n, int):
        return ""
    if n < 1024:
        return f"{n:,} bytes"
    size, unit = float(n), "B"
    for name in ("KiB", "MiB", "GiB", "TiB"):
        size, unit = size / 1024, name
        if size < 1024:
            break
    return f"{n:,} bytes ({size:.1f} {unit})"


def _word(ok: bool | None, yes: str = "holds", no: str = "FAILED") -> str:
    if ok is None:
        return '<span class="muted">not checked</span>'
    return f'<span class="{"ok" if ok else "failed"}-word">{e(yes if ok else no)}</span>'


def render(facts: dict[str, Any], screenshot: bytes | None) -> str:
    """The report's HTML, from the facts (and the screenshot's PNG, embedded)."""
    capture = facts["capture"]
    cid = capture["capture_id"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{e(POLICY)}">',
        '<meta name="referrer" content="no-referrer">',
        f'<meta name="generator" content="archiver {e(facts["report"]["tool"]["version"])}">',
        f"<title>Capture report {e(cid)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        f'<body data-capture="{e(cid)}">',
        _header(facts),
        _captured(facts),
        _screenshot(facts, screenshot),
        _videos(facts),
        _signature(facts),
        _timestamps(facts),
        _custody(facts),
        _verification(facts),
        _recipes(facts),
        _limits(),
        _appendix(facts),
        "</body>",
        "</html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def _verdict(facts: dict[str, Any]) -> tuple[bool, str]:
    check = facts["verification"]
    ok = bool(check["ok"])
    problems = len(check["problems"])
    if facts["signature"] is None:
        head = "Imported file, not signed by archiver: its own digests " + (
            "hold" if ok else "do NOT hold"
        )
    elif ok:
        head = "Verified: the capture is as it was signed"
    else:
        head = f"VERIFICATION FAILED: {counted(problems, 'problem')}"
    text = (
        f'<strong data-fact="verification.ok" data-value="{str(ok).lower()}">{e(head)}'
        f"</strong><br>Checked by archiver {e(facts['report']['tool']['version'])} at "
        f'<span data-fact="verification.at">{e(check["at"])}</span> (UTC), when this report '
        "was made"
    )
    if not ok:
        text += (
            "; the problems are listed under Verification below. The facts in this report "
            "are what the archive says now"
        )
    return ok, text + "."


HEADER_TITLE = 200  # characters of the page's title in the header (all of it below)
HEADER_URL = 300


def short(value: Any, limit: int) -> str:
    """``value`` as text, cut to ``limit`` characters (saying so): what a site chose
    (a title of a megabyte) must not push the verdict off the first page."""
    text = "" if value is None else str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters, in full below)"


def _header(facts: dict[str, Any]) -> str:
    capture, made = facts["capture"], facts["report"]
    ok, verdict = _verdict(facts)
    title = capture.get("title")
    named = f", titled “{e(short(title, HEADER_TITLE))}”" if title else ""
    return (
        "<header><h1>Capture report</h1>"
        f'<div class="verdict {"ok" if ok else "failed"}">{verdict}</div>'
        f'<p>Capture <code data-fact="capture_id">{e(capture["capture_id"])}</code> of '
        f'<span class="url">{e(short(capture.get("seed_url"), HEADER_URL))}</span>{named}</p>'
        f'<p class="small muted">Made at {e(made["made_at"])} (UTC) by '
        f"{e(made.get('made_by') or 'an unnamed operator')} on {e(made['host'])} with "
        f"archiver {e(made['tool']['version'])}. It states what the archive holds; every "
        "SHA-256 in it can be checked without archiver, with the commands under “Check it "
        "yourself”.</p></header>"
    )


def _section(ident: str, title: str, *body: str) -> str:
    return f'<section id="{ident}"><h2>{e(title)}</h2>{"".join(body)}</section>'


def _facts_table(rows: Iterable[str], **data: Any) -> str:
    attributes = "".join(f' data-{e(k)}="{e(v)}"' for k, v in data.items())
    return f'<table class="facts"{attributes}>{"".join(rows)}</table>'


def _hops(hops: list[dict[str, Any]]) -> str:
    """Redirects, each with where it led, as an ordered list (HTML), or ""."""
    items = "".join(
        f'<li><span class="url">{e(r["url"])}</span> '
        f'<span class="muted">(HTTP {e(r["http_status"])})</span> → '
        + (
            f'<span class="url">{e(r["location"])}</span>'
            if r.get("location")
            else '<span class="muted">its target could not be read</span>'
        )
        + "</li>"
        for r in hops
    )
    return f"<ol>{items}</ol>" if items else ""


def _captured(facts: dict[str, Any]) -> str:
    c = facts["capture"]
    redirects = _hops(facts.get("redirects") or [])
    rows = [
        _row("Capture id", "capture_id", c["capture_id"], cls="hex"),
        _row("URL asked for", "seed_url", c.get("seed_url"), cls="url"),
        _row("Final URL", "final_url", c.get("final_url"), cls="url"),
        _row("HTTP status of the page", "http_status", c.get("http_status")),
        _row("Redirects of the page", "redirects", None, shown=redirects or "none"),
        _row("Page title", "title", c.get("title")),
        _row("Author, as the page states", "author", c.get("author")),
        _row("Published, as the page states", "published_at", c.get("published_at")),
        _row("Language", "language", c.get("language")),
        _row("Started (UTC)", "started_at", c.get("started_at")),
        _row("Ended (UTC)", "finished_at", c.get("finished_at")),
        _row("Status", "status", c.get("status")),
    ]
    if c.get("failure"):
        rows.append(_row("Why it failed", "failure", c["failure"]))
    errors = "".join(
        f'<li><span class="url">{e(x.get("url"))}</span>: {e(x.get("reason"))}</li>'
        for x in c.get("errors") or []
    )
    if errors:
        rows.append(_row("Not captured", "errors", None, shown=f"<ul>{errors}</ul>"))
    tool = f"{c.get('tool_name') or ''} {c.get('tool_version') or ''}".strip()
    rows += [
        _row("Operator (--operator)", "operator", c.get("operator")),
        _row("Note", "note", c.get("note")),
        _row("Collection", "collection", c.get("collection")),
        _row("Machine", "hostname", c.get("hostname")),
        _row("Operating system", "platform", c.get("platform")),
        _row("Tool", "tool", tool),
        _row("User-Agent sent", "user_agent", c.get("user_agent")),
    ]
    libraries = c.get("libraries")
    if isinstance(libraries, dict) and libraries:
        shown = ", ".join(f"{e(k)} {e(v)}" for k, v in sorted(libraries.items()))
        rows.append(_row("Libraries", "libraries", None, shown=shown))
    if c.get("browser"):
        rows += [
            _row("Browser", "browser", c.get("browser")),
            _row("Browser's User-Agent", "browser_user_agent", c.get("browser_user_agent")),
            _row("Window (CSS px @ scale)", "viewport", c.get("viewport")),
        ]
    files = "".join(f'<li class="url">{e(f)}</li>' for f in c.get("warc_files") or [])
    rows += [
        _row("WARC records", "record_count", c.get("record_count")),
        _row("Payload bytes", "total_bytes", None, shown=e(_bytes(c.get("total_bytes")))),
        _row("WARC files", "warc_files", None, shown=f"<ul>{files}</ul>" if files else ""),
    ]
    return _section(
        "captured",
        "1. What was captured",
        "<p>As the capturing machine recorded it, by its own clock (see Trusted times for "
        "an authority's).</p>",
        _facts_table(rows),
    )


def _screenshot(facts: dict[str, Any], png: bytes | None) -> str:
    shot = facts.get("screenshot")
    if shot is None:
        return _section(
            "screenshot",
            "2. Screenshot",
            "<p>None: the page was captured without a browser; the capture holds what the "
            "servers sent (<code>archiver capture --browser</code> also keeps what a browser "
            "showed).</p>",
        )
    caption = (
        "What the browser showed in its window: record "
        f'<span class="hex">{e(shot["record_id"])}</span> (<span class="url">{e(shot["url"])}'
        f"</span>), {e(_bytes(shot.get('size')))}, {e(shot.get('width'))} x "
        f"{e(shot.get('height'))} pixels, SHA-256 "
        f'<span class="hex" data-fact="screenshot.sha256">{e(shot.get("sha256"))}</span>.'
    )
    if png is None:
        return _section(
            "screenshot",
            "2. Screenshot",
            f'<p class="failed-word">{e(shot.get("error"))}</p><p>{caption}</p>',
        )
    data = base64.b64encode(png).decode("ascii")
    return _section(
        "screenshot",
        "2. Screenshot",
        f'<figure><img id="screenshot-image" src="data:image/png;base64,{data}" '
        f'width="{int(shot["width"])}" height="{int(shot["height"])}" '
        'alt="The screenshot of the captured page">'
        f"<figcaption>{caption}</figcaption></figure>",
    )


KINDS = {
    "file": "a video file",
    "stream": "a stream (HLS or DASH)",
    "platform": "a platform video (yt-dlp)",
}
PLATFORM_FACTS = (
    ("extractor", "yt-dlp extractor"),
    ("title", "Title, as the platform states"),
    ("uploader", "Uploader, as the platform states"),
    ("problem", "Problem"),
)


def _duration(video: dict[str, Any]) -> str:
    seconds = video.get("duration_seconds")
    how = e(video.get("duration_source"))
    if isinstance(seconds, int | float):
        return f'{e(media.seconds_text(float(seconds)))} <span class="muted small">({how})</span>'
    return f'<span class="muted">unknown: {how}</span>'


def _video(number: int, v: dict[str, Any]) -> str:
    rows = [
        _row("URL", "url", v["url"], cls="url"),
        _row("Kind", "kind", KINDS.get(v.get("kind") or "", v.get("kind"))),
        _row("How it was found", "found_via", v.get("found_via")),
        _row("Found on", "found_on", v.get("found_on"), cls="url"),
    ]
    if v.get("redirects"):
        rows.append(_row("Reached through", "redirects", None, shown=_hops(v["redirects"])))
    if v.get("error"):
        rows.append(_row("Not captured", "error", v["error"]))
    rows += [
        _row("Size", "size", None, shown=e(_bytes(v.get("size")))),
        _row("SHA-256", "sha256", v.get("sha256"), cls="hex"),
        _row("Record", "record_id", v.get("record_id"), cls="hex"),
    ]
    if v.get("stored_in"):
        kept = v["stored_in"]
        rows.append(
            _row(
                "Stored once, in",
                "stored_in",
                None,
                shown=f'record <span class="hex">{e(kept["record_id"])}</span> of capture '
                f'<span class="hex">{e(kept["capture_id"])}</span> (the same bytes were '
                "captured before: this record points at them)",
            )
        )
    rows += [
        _row("Duration", "duration_seconds", None, shown=_duration(v)),
    ]
    if v.get("picture"):
        rows.append(_row("Picture", "picture", v["picture"]))
    platform = v.get("platform") or {}
    for key, label in PLATFORM_FACTS:
        if platform.get(key):
            rows.append(_row(label, f"platform.{key}", platform[key]))
    stream = v.get("stream")
    if stream:
        rows += [
            _row("Track written", "stream.track", stream.get("track")),
            _row(
                "Its segments, joined", "stream.bytes", None, shown=e(_bytes(stream.get("bytes")))
            ),
            _row(
                "SHA-256 of the joined segments", "stream.sha256", stream.get("sha256"), cls="hex"
            ),
        ]
    out = [f"<h3>Video {number}</h3>", _facts_table(rows, video=number)]
    records = v.get("records") or []
    if len(records) > 1 or (records and records[0]["record_id"] != v.get("record_id")):
        out.append('<p class="small">Every record of this URL:</p>')
        out.append(_records_table(records, number))
    if stream:
        out.append('<p class="small">The segments of the track written, in playlist order:</p>')
        out.append(_segments_table(stream.get("segments") or [], number))
    return "".join(out)


def _videos(facts: dict[str, Any]) -> str:
    videos = facts.get("videos") or []
    if not videos:
        return _section(
            "videos",
            "3. Videos",
            '<p data-fact="videos.count" data-value="0">The capture holds no video.</p>',
        )
    intro = (
        f'<p data-fact="videos.count" data-value="{len(videos)}">'
        f"{counted(len(videos), 'video')}, each as the page referenced it. Size and SHA-256 "
        "are those of the stored payload (the body as received); the duration is read from "
        "the stored file.</p>"
    )
    return _section("videos", "3. Videos", intro, *(_video(n, v) for n, v in enumerate(videos, 1)))


def _list_table(head: list[tuple[str, int]], rows: Iterable[list[str]], **data: Any) -> str:
    """A table of several columns: ``head`` gives each title and its width in percent;
    each cell of ``rows`` is HTML already."""
    columns = "".join(f'<col style="width:{width}%">' for _, width in head)
    titles = "".join(f"<th>{e(title)}</th>" for title, _ in head)
    body = "".join("<tr>" + "".join(cells) + "</tr>" for cells in rows)
    attributes = "".join(f' data-{e(k)}="{e(v)}"' for k, v in data.items())
    return (
        f'<table class="list small"{attributes}><colgroup>{columns}</colgroup>'
        f"<tr>{titles}</tr>{body}</table>"
    )


def _records_table(records: list[dict[str, Any]], number: int) -> str:
    def cells(r: dict[str, Any]) -> list[str]:
        status = e(r.get("http_status") or r.get("warc_type"))
        if r.get("truncated"):
            status += f" (truncated: {e(r['truncated'])})"
        return [
            f'<td class="hex">{e(r["record_id"])}</td>',
            f"<td>{status}</td>",
            f"<td>{e(r.get('size'))}</td>",
            f'<td class="hex">{e(r.get("sha256"))}</td>',
        ]

    head = [("Record", 34), ("HTTP", 12), ("Size", 12), ("SHA-256", 42)]
    return _list_table(head, (cells(r) for r in records), records=number)


def _segments_table(segments: list[dict[str, Any]], number: int) -> str:
    rows = (
        [
            f"<td>{i}</td>",
            f'<td class="url">{e(s.get("url"))}</td>',
            f"<td>{e(s.get('size'))}</td>",
            f'<td class="hex">{e(s.get("sha256"))}</td>',
        ]
        for i, s in enumerate(segments, 1)
    )
    head = [("#", 5), ("URL", 41), ("Size", 12), ("SHA-256", 42)]
    return _list_table(head, rows, segments=number)


def _signature(facts: dict[str, Any]) -> str:
    s = facts.get("signature")
    if s is None:
        return _section(
            "signature",
            "4. Signature",
            '<p data-fact="signature" data-value="none">None: this capture is a WARC file '
            "written by another tool and imported into the archive (<code>archiver index "
            "import</code>). archiver neither made nor signed it: there is no signer and no "
            "manifest. Only its internal consistency (the digests its records declare) can "
            "be checked, and its SHA-256 as the custody log recorded it on import.</p>",
        )
    rows = [
        _row(
            "Signer's key fingerprint (SHA-256 of the Ed25519 public key)",
            "key_fingerprint",
            s.get("key_fingerprint"),
            cls="hex",
        ),
        _row("Public key file", "public_key", s.get("public_key"), cls="url"),
        _row("Signed manifest", "manifest", s.get("manifest"), cls="url"),
        _row("SHA-256 of the manifest", "manifest_sha256", s.get("manifest_sha256"), cls="hex"),
        _row("Signature file", "signature_file", s.get("signature_file"), cls="url"),
        _row("Signed at (the capturing machine's clock)", "signed_at", s.get("signed_at")),
        _row("The signature", "signature_holds", None, shown=_word(s.get("signature_holds"))),
    ]
    return _section(
        "signature",
        "4. Signature",
        "<p>The capture's manifest lists every WARC file and record with its SHA-256, and "
        "the signer's Ed25519 key signed the manifest. Compare the fingerprint with the one "
        "the archivist gives you another way: a signature proves who holds the key, not who "
        "a person is.</p>",
        _facts_table(rows),
    )


def _stamp_row(t: dict[str, Any]) -> list[str]:
    result = _word(t.get("ok"))
    if t.get("problem"):
        result += f"<br>{e(t['problem'])}"
    if t.get("detail"):
        result += f'<br><span class="small">{e(t["detail"])}</span>'
    accuracy = f" ± {e(t['accuracy_seconds'])} s" if t.get("accuracy_seconds") else ""
    return [
        f"<td>{e(t.get('authority'))}</td>",
        f'<td data-fact="timestamp.time">{e(t.get("time"))}{accuracy}</td>',
        f'<td class="url">{e(t.get("file"))}</td>',
        f"<td>{result}</td>",
    ]


def _timestamps(facts: dict[str, Any]) -> str:
    stamps = facts.get("timestamps") or []
    intro = (
        "<p>A signature says who, not when. An RFC 3161 time-stamping authority's token over "
        "the signature proves that the signed capture existed by the authority's time. A "
        "time is <em>trusted</em> only when the authority's root certificate was given to "
        "the verification (<code>--tsa-ca</code>): a root saved in the archive is only as "
        "trustworthy as the archive.</p>"
    )
    if not stamps:
        return _section(
            "timestamps",
            "5. Trusted times",
            intro,
            '<p data-fact="timestamps.count" data-value="0">None: the capture has no '
            "time-stamp token; its times are the capturing machine's statement only.</p>",
        )
    trusted = facts.get("trusted_time")
    said = (
        "Trusted time: the capture existed by "
        f'<strong data-fact="trusted_time">{e(trusted)}</strong> (UTC).'
        if trusted
        else '<span data-fact="trusted_time">No trusted time</span>: no authority\'s root '
        "was given to the verification, or no token reaches one."
    )
    head = [("Authority", 20), ("Time (UTC)", 22), ("Token", 28), ("Result", 30)]
    table = _list_table(head, map(_stamp_row, stamps), stamps=len(stamps))
    return _section("timestamps", "5. Trusted times", intro, table, f"<p>{said}</p>")


def _event_row(ev: dict[str, Any]) -> list[str]:
    if ev.get("signed"):
        signer = f'signed by <span class="hex">{e(ev.get("key_fingerprint"))}</span>'
    elif not ev.get("key_fingerprint"):
        signer = "<strong>not signed</strong>"
    else:
        signer = (
            '<span class="failed-word">its signature does not hold, or is not by a '
            "trusted key</span>"
        )
    return [
        f"<td>{int(ev['seq'])}</td>",
        f"<td>{e(ev['time'])}</td>",
        f'<td>{e(ev["action"])}<br><span class="muted">{e(ev.get("detail"))}</span></td>',
        f"<td>{e(ev.get('operator'))} on {e(ev.get('host'))}<br>{signer}</td>",
        f"<td>{e(ev.get('result'))}</td>",
        f'<td class="hex">{e(ev.get("sha256"))}</td>',
    ]


def _custody(facts: dict[str, Any]) -> str:
    log = facts["custody"]
    not_logged = facts["report"].get("not_logged")
    if not_logged:
        this = (
            '<strong data-fact="report.not_logged">The making of this report is not in the '
            f"custody log</strong>: the archive could not be written ({e(not_logged)})."
        )
    else:
        this = "The making of this report is logged as the next event (action <code>report</code>)."
    intro = (
        "<p>Every action on the archive is an event of its custody log, chained to the one "
        "before by its SHA-256 and signed by whoever acted. These are the events about this "
        f"capture. {this}</p>"
    )
    if not log.get("exists"):
        return _section(
            "custody",
            "6. Chain of custody",
            intro,
            '<p data-fact="custody.exists" data-value="false">The archive has no custody log.</p>',
        )
    head = [
        ("#", 4),
        ("Time (UTC)", 16),
        ("Action", 22),
        ("By", 26),
        ("Result", 10),
        ("Event SHA-256", 22),
    ]
    table = _list_table(head, map(_event_row, log["events"]), events=len(log["events"]))
    state = (
        f"<p>The log ({e(log.get('log'))}): its chain {_word(log.get('ok'))}; its last event "
        f'has SHA-256 <span class="hex" data-fact="custody.head">{e(log.get("head"))}</span>.</p>'
    )
    problems = "".join(f"<li>{e(p)}</li>" for p in log.get("problems") or [])
    notes = "".join(f'<p class="small muted">{e(n)}</p>' for n in log.get("notes") or [])
    listed = (
        f'<ul class="problems" data-fact="custody.problems">{problems}</ul>' if problems else ""
    )
    return _section("custody", "6. Chain of custody", intro, table, state, listed, notes)


def _check_row(c: dict[str, Any]) -> list[str]:
    return [
        f"<td>{e(c['check'])}</td>",
        f'<td class="url">{e(c["target"])}</td>',
        f"<td>{_word(c['ok'])}</td>",
        f"<td>{e(c.get('detail'))}</td>",
    ]


def _verification(facts: dict[str, Any]) -> str:
    check = facts["verification"]
    checks = [*check.get("checks", []), *check.get("index", [])]
    head = [("Check", 14), ("Of", 30), ("Result", 10), ("Detail", 46)]
    table = _list_table(head, map(_check_row, checks)) if checks else ""
    if check.get("trusted_keys_given"):
        keys = ", ".join(check.get("trusted_keys") or [])
        given = f"The keys that may sign were given ({e(keys)})"
    else:
        given = "No trusted key was given: the signer is whoever holds the key shown above"
    if check.get("tsa_roots_given"):
        given += "; the authorities' roots were given"
    else:
        given += "; no authority's root was given, so no time is called trusted"
    imported = check.get("imported")
    extra = ""
    if imported:
        extra = (
            "<p>Checked: internal consistency only, there being no signature: "
            f"{e(imported.get('records'))} records, {e(imported.get('records_without_digest'))}"
            " of them without a digest.</p>"
        )
    problems = check.get("problems") or []
    if problems:
        items = "".join(f"<li>{e(p)}</li>" for p in problems)
        listed = (
            f'<h3>Problems</h3><ul class="problems" data-fact="verification.problems">{items}</ul>'
        )
    else:
        listed = '<p data-fact="verification.problems" data-value="0">No problem found.</p>'
    result = _word(check.get("ok"), "everything holds", "FAILED")
    return _section(
        "verification",
        "7. Verification when this report was made",
        f"<p>At {e(check['at'])} (UTC) archiver verified this capture: {result}. {given}.</p>",
        extra,
        table,
        listed,
    )


def _recipes(facts: dict[str, Any]) -> str:
    out = [
        "<p>With OpenSSL 3 and GNU coreutils (sha256sum, dd), without archiver: each block of "
        "commands, run in a shell, must print what follows it. The project's "
        "<code>docs/verifying.md</code> explains each step.</p>"
    ]
    found = steps(facts)
    if not found:
        out.append(
            '<p class="failed-word">Nothing can be checked: the archive holds no signed '
            "manifest of this capture.</p>"
        )
    for number, step in enumerate(found, 1):
        expected = "\n".join(e(line) for line in step.expect)
        out.append(
            f'<div class="step"><h3>{number}. {e(step.title)}</h3><p>{e(step.why)}</p>'
            f"<pre>{html.escape(step.commands, quote=False)}</pre>"
            f'<p class="small">It must print (among other lines):</p>'
            f'<pre class="expect">{expected}</pre></div>'
        )
    return _section("check", "8. Check it yourself", *out)


def _limits() -> str:
    return _section(
        "limits",
        "9. What this report does not prove",
        "<ul><li><strong>When</strong>, unless a trusted time is shown above: the capture's "
        "times come from the capturing machine's clock.</li>"
        "<li><strong>Who, as a person</strong>: the signature binds the capture to a key; "
        "that the key is a given person's rests on how you obtained its fingerprint.</li>"
        "<li><strong>That the capture was honest</strong>: that nothing changed after "
        "signing is proved, not that the capturing machine recorded faithfully what the "
        "server sent, nor that the server sent the same to everyone.</li>"
        "<li><strong>That the page is complete or true</strong>: only the records listed "
        "were captured; what failed is listed above.</li>"
        "<li><strong>This document itself</strong>: it is made from the archive and can be "
        "made again from it; the archive, not this report, is the evidence.</li></ul>",
    )


def facts_json(facts: dict[str, Any]) -> str:
    """The facts as JSON, readable (UTF-8 text as it is) but inert: the characters that
    reorder or hide text (BiDi overrides, C1 controls) are written as ``\\uXXXX``
    escapes, which JSON reads back as the same characters."""
    text = json.dumps(facts, ensure_ascii=False, indent=1, sort_keys=True)
    return "".join(f"\\u{ord(ch):04x}" if ch != "\n" and printable(ch) != ch else ch for ch in text)


def _appendix(facts: dict[str, Any]) -> str:
    text = facts_json(facts)
    return (
        '<section id="facts-appendix"><h2>Appendix: the same facts, for programs</h2>'
        '<p class="small">JSON (format <code>archiver/report-facts/1</code>): every fact '
        "shown above, as the archive gave it.</p>"
        f'<pre id="archiver-facts">{html.escape(text, quote=False)}</pre></section>'
    )
