"""Segments of DASH manifests: the init and media segments of the best representation
of each adaptation set (:func:`iter_dash`, :func:`parse_dash`), of those replay tools
keep too, or of all (see :data:`~archiver.web.discover.hls.Renditions`), and the
:class:`~archiver.web.discover.hls.Rendition` a manifest's record names for replay
(:func:`dash_rendition`)."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Iterator
from fractions import Fraction
from urllib.parse import urljoin, urlsplit
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET  # type: ignore[import-untyped,unused-ignore]

from archiver.web import discover
from archiver.web.discover.found import MAX_SEGMENTS, Found, _resolve
from archiver.web.discover.hls import Rendition, Renditions, _limits_pywb, _limits_wabac, _safe

_DURATION_RE = re.compile(
    r"^\s*P(?:(?P<Y>\d+(?:[.,]\d+)?)Y)?(?:(?P<Mo>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<W>\d+(?:[.,]\d+)?)W)?(?:(?P<D>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?:(?P<H>\d+(?:[.,]\d+)?)H)?(?:(?P<Mi>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<S>\d+(?:[.,]\d+)?)S)?)?\s*$"
)
_DURATION_UNITS = {
    "Y": 365 * 86400,
    "Mo": 30 * 86400,
    "W": 7 * 86400,
    "D": 86400,
    "H": 3600,
    "Mi": 60,
    "S": 1,
}
_TEMPLATE_RE = re.compile(r"\$(\w*)(?:%0?(\d{1,3})([dxXo]))?\$")


def _iso_duration(value: str | None) -> Fraction | None:
    """Seconds of an ISO 8601 duration such as PT1M3.5S, or None."""
    if not value:
        return None
    match = _DURATION_RE.match(value)
    if match is None:
        return None
    total = Fraction(0)
    for unit, seconds in _DURATION_UNITS.items():
        part = match.group(unit)
        if part:
            total += Fraction(part.replace(",", ".")) * seconds
    return total


def _int(value: str | None, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value.strip())
    except ValueError:
        return default


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _children(el: Element, name: str) -> list[Element]:
    return [c for c in el if _local(c.tag) == name]


def _child(el: Element, name: str) -> Element | None:
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _base_of(parent: str, el: Element) -> str:
    node = _child(el, "BaseURL")
    text = (node.text or "").strip() if node is not None else ""
    if not text:
        return parent
    try:
        return urljoin(parent, text)
    except ValueError:
        return parent


def _expand_template(template: str, values: dict[str, int | str]) -> str:
    def repl(match: re.Match[str]) -> str:
        name, width, conv = match.group(1), match.group(2), match.group(3)
        if name == "":
            return "$"
        if name not in values:
            return match.group(0)
        value = values[name]
        if width and isinstance(value, int):
            return format(value, f"0{int(width)}{'d' if conv is None else conv}")
        return str(value)

    return _TEMPLATE_RE.sub(repl, template)


def _timeline_times(timeline: Element, end: Fraction | None) -> Iterator[int]:
    """Start times of a SegmentTimeline ($Time$ values)."""
    entries = _children(timeline, "S")
    t = 0
    for i, s in enumerate(entries):
        t = _int(s.get("t"), t)
        d = _int(s.get("d"), 0)
        if d <= 0:
            continue
        r = _int(s.get("r"), 0)
        if r < 0:
            nxt = _int(entries[i + 1].get("t"), -1) if i + 1 < len(entries) else -1
            limit = Fraction(nxt) if nxt >= 0 else end
            count = 1 if limit is None else max(0, math.ceil((limit - t) / d))
        else:
            count = r + 1
        for _ in range(count):
            yield t
            t += d


def _segment_info(levels: list[Element]) -> tuple[str, dict[str, str], list[Element]]:
    """Kind of addressing, merged attributes, and the elements (outer first)."""
    for level in reversed(levels):
        for kind in ("SegmentTemplate", "SegmentList", "SegmentBase"):
            if _child(level, kind) is not None:
                elements = [e for e in (_child(lv, kind) for lv in levels) if e is not None]
                attrs: dict[str, str] = {}
                for e in elements:
                    attrs.update(e.attrib)
                return kind, attrs, elements
    return "", {}, []


def _innermost(elements: list[Element], name: str) -> Element | None:
    for e in reversed(elements):
        found = _child(e, name)
        if found is not None:
            return found
    return None


MAX_DASH_IDLE = MAX_SEGMENTS
"""Most segment URLs a DASH manifest may make that give nothing new (a repeat of one
given already, or no http(s) URL) before the rest of it is left unread: each costs
time, and none is counted by the capture's budget (a 25 kB manifest of periods whose
``media`` template is ``mailto:$Number$`` kept the parser turning for minutes)."""


def _note_cut(cut: list[str] | None, reason: str) -> None:
    if cut is not None and reason not in cut:
        cut.append(reason)


def _dash_representation(
    rep: Element,
    levels: list[Element],
    base: str,
    mpd_url: str,
    period_seconds: Fraction | None,
    cut: list[str] | None = None,
) -> Iterator[tuple[str, str | None, str]]:
    """(base, raw URL, via) of a representation's init and media segments, lazily; at most
    MAX_SEGMENTS media segments, saying so in ``cut`` if it names more."""
    more = (
        f"representation {rep.get('id', '')!r} names more than {MAX_SEGMENTS} segments:"
        f" only the first {MAX_SEGMENTS} were taken"
    )
    kind, attrs, elements = _segment_info(levels)
    values: dict[str, int | str] = {
        "RepresentationID": rep.get("id", ""),
        "Bandwidth": _int(rep.get("bandwidth"), 0),
    }
    init_el = _innermost(elements, "Initialization")
    init_src = init_el.get("sourceURL") if init_el is not None else None

    if kind == "SegmentTemplate":
        init = attrs.get("initialization") or init_src
        if init:
            yield base, _expand_template(init, values), "dash init"
        media = attrs.get("media")
        if not media:
            return
        start = _int(attrs.get("startNumber"), 1)
        timescale = _int(attrs.get("timescale"), 1) or 1
        offset = _int(attrs.get("presentationTimeOffset"), 0)
        timeline = _innermost(elements, "SegmentTimeline")
        times: Iterable[int]
        if timeline is not None:
            end = None
            if period_seconds is not None:
                end = offset + period_seconds * timescale
            times = _timeline_times(timeline, end)
        else:
            duration = _int(attrs.get("duration"), 0)
            if duration > 0 and period_seconds is not None:
                count = math.ceil(period_seconds * timescale / duration)
            elif duration > 0:
                count = 0  # live without a known end: nothing to enumerate
            else:
                count = 1
            end_number = _int(attrs.get("endNumber"), -1)
            if end_number >= start:
                count = min(count, end_number - start + 1)
            times = (offset + i * duration for i in range(max(0, count)))
        if "$Number" not in media and "$Time" not in media:
            times = itertools.islice(times, 1)  # one URL, however many segments it names
        for number, time in zip(itertools.count(start), itertools.islice(times, MAX_SEGMENTS + 1)):
            if number - start == MAX_SEGMENTS:
                _note_cut(cut, more)
                return
            url = _expand_template(media, {**values, "Number": number, "Time": time})
            yield base, url, "dash segment"
    elif kind == "SegmentList":
        if init_el is not None:
            yield base, init_src or base, "dash init"
        seg_owner = next(
            (e for e in reversed(elements) if _child(e, "SegmentURL") is not None), None
        )
        if seg_owner is None:
            return
        segments = _children(seg_owner, "SegmentURL")
        if len(segments) > MAX_SEGMENTS:
            _note_cut(cut, more)
        for seg in itertools.islice(segments, MAX_SEGMENTS):
            yield base, seg.get("media") or base, "dash segment"
    else:
        yield base, init_src, "dash init"
        if base != mpd_url and not urlsplit(base).path.endswith("/"):
            yield base, base, "dash segment"


def _period_durations(periods: list[Element], total: Fraction | None) -> list[Fraction | None]:
    starts: list[Fraction | None] = []
    durations: list[Fraction | None] = []
    previous_end: Fraction | None = Fraction(0)
    for period in periods:
        start = _iso_duration(period.get("start"))
        if start is None:
            start = previous_end
        duration = _iso_duration(period.get("duration"))
        starts.append(start)
        durations.append(duration)
        previous_end = None if start is None or duration is None else start + duration
    for i, duration in enumerate(durations):
        if duration is not None:
            continue
        start = starts[i]
        nxt = starts[i + 1] if i + 1 < len(starts) else None
        if start is not None and nxt is not None:
            durations[i] = max(Fraction(0), nxt - start)
        elif start is not None and total is not None and i + 1 == len(periods):
            durations[i] = max(Fraction(0), total - start)
    return durations


def _best(reps: list[Element]) -> Element:
    """The representation of the highest bandwidth (the first of equals)."""
    return max(reps, key=lambda r: _int(r.get("bandwidth"), 0))


def _pixels(rep: Element) -> int:
    """width x height as the representation gives them (what replay tools read), or 0."""
    return max(0, _int(rep.get("width"), 0)) * max(0, _int(rep.get("height"), 0))


_PYWB_NS = "{urn:mpeg:dash:schema:mpd:2011}"


def _pywb_dash(root: Element, rendition: Rendition | None) -> set[Element]:
    """The representation pywb's ``RewriteDASH`` keeps of each adaptation set (it reads
    elements of the MPD namespace only; a number it cannot read fails its rewriting, and
    the player then chooses: none)."""
    max_resolution, max_bandwidth = _limits_pywb(rendition)
    kept: set[Element] = set()
    try:
        for period in root.findall(_PYWB_NS + "Period"):
            for aset in period.findall(_PYWB_NS + "AdaptationSet"):
                best = None
                best_resolution = best_bandwidth = 0
                for rep in aset.findall(_PYWB_NS + "Representation"):
                    resolution = int(rep.get("width", "0")) * int(rep.get("height", "0"))
                    bandwidth = int(rep.get("bandwidth", 0))
                    if resolution and max_resolution:
                        if best_resolution < resolution <= max_resolution:
                            best, best_resolution, best_bandwidth = rep, resolution, bandwidth
                    elif best_bandwidth < bandwidth <= max_bandwidth:
                        best, best_resolution, best_bandwidth = rep, resolution, bandwidth
                if best is not None:
                    kept.add(best)
    except ValueError:
        return set()
    return kept


_JS_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)", re.ASCII)
_JS_RADIX = re.compile(r"0([xXoObB])([0-9a-fA-F]+)", re.ASCII)


def _js_number(value: str | None) -> float:
    """``Number(value || "0")`` as JavaScript reads an attribute: NaN when not a number."""
    text = (value or "0").strip(" \t\n\r\v\f\u00a0\ufeff\u2028\u2029")
    if not text:
        return 0.0
    if _JS_DECIMAL.fullmatch(text):
        return float(text.replace("Infinity", "inf"))
    radix = _JS_RADIX.fullmatch(text)
    if radix:
        base = {"x": 16, "o": 8, "b": 2}[radix.group(1).lower()]
        try:
            return float(int(radix.group(2), base))
        except ValueError:
            return math.nan
    return math.nan


def _wabac_dash(root: Element, rendition: Rendition | None) -> set[Element]:
    """The representation wabac.js's ``rewriteDASH`` keeps of each adaptation set at
    replay.  It reads one period only: with more, or none, or an adaptation set without
    representations, its rewriting fails and the player chooses (none kept here)."""
    max_resolution, max_bandwidth = _limits_wabac(rendition)
    periods = _children(root, "Period")
    if _local(root.tag) != "MPD" or len(periods) != 1:
        return set()
    asets = _children(periods[0], "AdaptationSet")
    if not asets:
        return set()
    kept: set[Element] = set()
    for aset in asets:
        reps = _children(aset, "Representation")
        if not reps:
            return set()
        best = None
        best_resolution = best_bandwidth = 0.0
        for rep in reps:
            resolution = _js_number(rep.get("width")) * _js_number(rep.get("height"))
            bandwidth = _js_number(rep.get("bandwidth"))
            truthy = resolution == resolution and resolution != 0  # NaN and 0 are falsy
            if truthy and max_resolution and resolution <= max_resolution:
                if resolution > best_resolution:
                    best, best_resolution, best_bandwidth = rep, resolution, bandwidth
            elif best_bandwidth < bandwidth <= max_bandwidth:
                best, best_resolution, best_bandwidth = rep, resolution, bandwidth
        if best is not None:
            kept.add(best)
    return kept


def _dash_choice(root: Element, renditions: Renditions) -> tuple[Rendition | None, set[Element]]:
    """The rendition a manifest's record names, and the representations kept whole.

    Ours are the highest bandwidth of each adaptation set; the record names the largest
    of their resolutions and of their bandwidths (one header serves the video and the
    audio sets: each of ours is within both limits, and an audio set, without a
    resolution, is chosen by bandwidth); with ``replayed``, also the representations
    pywb and wabac.js keep when the record names that."""
    bests: list[Element] = []
    everything: set[Element] = set()
    for period in _children(root, "Period"):
        for aset in _children(period, "AdaptationSet"):
            reps = _children(aset, "Representation")
            if reps:
                bests.append(_best(reps))
                everything.update(reps)
    if not bests:
        return None, set()
    rendition = _safe(
        Rendition(max(_pixels(r) for r in bests), max(_int(r.get("bandwidth"), 0) for r in bests))
    )
    if rendition is not None and not rendition.bandwidth:
        rendition = None  # pywb would keep no representation of a set without a resolution
    if renditions == "all":
        return rendition, everything
    kept = set(bests)
    if renditions == "replayed":
        kept |= _pywb_dash(root, rendition) | _wabac_dash(root, rendition)
    return rendition, kept


def _parsed(body: bytes) -> Element | None:
    try:
        root: Element = SafeET.fromstring(body[: discover.MAX_BODY])
    except Exception:  # invalid XML, entity bombs, external entities
        return None
    return root if _local(root.tag) == "MPD" else None


def dash_rendition(body: bytes) -> Rendition | None:
    """The rendition a DASH manifest's record names for replay (see
    :class:`~archiver.web.discover.hls.Rendition`); None for what is no manifest."""
    root = _parsed(body)
    return None if root is None else _dash_choice(root, "best")[0]


def iter_dash(
    body: bytes, url: str, cut: list[str] | None = None, *, renditions: Renditions = "best"
) -> Iterator[Found]:
    """Init and media segments of the representations ``renditions`` keeps of each
    AdaptationSet (the best alone by default), lazily: a 23 kB manifest can name ten
    million segments (periods x adaptation sets x repeats), which exist here one at a
    time, as the caller asks for them.  What a limit (MAX_SEGMENTS, MAX_DASH_IDLE) left
    unread is said in ``cut``."""
    root = _parsed(body)
    if root is None:
        return
    seen: set[str] = set()
    idle = 0  # URLs made that gave nothing new
    try:
        kept = _dash_choice(root, renditions)[1]
        mpd_base = _base_of(url, root)
        total = _iso_duration(root.get("mediaPresentationDuration"))
        periods = _children(root, "Period")
        for period, seconds in zip(periods, _period_durations(periods, total), strict=True):
            period_base = _base_of(mpd_base, period)
            for aset in _children(period, "AdaptationSet"):
                for rep in _children(aset, "Representation"):
                    if rep not in kept:
                        continue
                    rep_base = _base_of(_base_of(period_base, aset), rep)
                    levels = [period, aset, rep]
                    made = _dash_representation(rep, levels, rep_base, url, seconds, cut)
                    for base, raw, via in made:
                        found = _resolve(base, raw)
                        if found is not None and found not in seen:
                            seen.add(found)
                            yield Found(found, "video-segment", via)
                        elif (idle := idle + 1) > MAX_DASH_IDLE:
                            _note_cut(
                                cut,
                                f"more than {MAX_DASH_IDLE} of its segment URLs repeat others"
                                " or are no http(s) URLs: the rest of it was not read",
                            )
                            return
    except Exception:  # malformed input: keep what was found
        return


def parse_dash(body: bytes, url: str) -> tuple[Found, ...]:
    """:func:`iter_dash` as a tuple, of at most MAX_SEGMENTS items (for reading back a
    stored manifest; a capture takes :func:`iter_dash` as far as its budget goes)."""
    return tuple(itertools.islice(iter_dash(body, url), MAX_SEGMENTS))
