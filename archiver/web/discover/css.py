"""References in CSS: url() requisites and @import targets (:func:`parse_css`)."""

from __future__ import annotations

from collections.abc import Iterator

import tinycss2  # type: ignore[import-untyped,unused-ignore]
import tinycss2.bytes  # type: ignore[import-untyped,unused-ignore]

from archiver.web import discover
from archiver.web.discover.found import Found, Unfetched, _Collector


def _css_url_of(token: object) -> str | None:
    """URL of a url()/string token, else None."""
    kind = getattr(token, "type", None)
    if kind in ("url", "string"):
        value = getattr(token, "value", None)
        return value if isinstance(value, str) else None
    if kind == "function" and getattr(token, "lower_name", None) == "url":
        for arg in getattr(token, "arguments", None) or ():
            if getattr(arg, "type", None) == "string":
                value = getattr(arg, "value", None)
                return value if isinstance(value, str) else None
    return None


def _css_walk(tokens: list[object], base: str, out: _Collector) -> None:
    stack: list[Iterator[object]] = [iter(tokens)]
    while stack:
        token = next(stack[-1], None)
        if token is None:
            stack.pop()
            continue
        kind = getattr(token, "type", None)
        if kind == "at-keyword" and getattr(token, "lower_value", None) == "import":
            for following in stack[-1]:
                ftype = getattr(following, "type", None)
                if ftype in ("whitespace", "comment"):
                    continue
                target = _css_url_of(following)
                if target is not None:
                    out.add_url(base, target, "requisite", "css @import", True)
                break
        elif kind == "url":
            out.add_url(base, _css_url_of(token), "requisite", "css url()")
        elif kind == "function":
            name = getattr(token, "lower_name", "")
            if name == "url":
                out.add_url(base, _css_url_of(token), "requisite", "css url()")
            else:
                args = list(getattr(token, "arguments", None) or ())
                if name in ("image-set", "-webkit-image-set"):
                    for arg in args:
                        if getattr(arg, "type", None) == "string":
                            raw = getattr(arg, "value", None)
                            if isinstance(raw, str):
                                out.add_url(base, raw, "requisite", "css url()")
                stack.append(iter(args))
        elif kind in ("() block", "[] block", "{} block"):
            stack.append(iter(list(getattr(token, "content", None) or ())))


def parse_css(
    body: bytes | str, base_url: str, unfetched: list[Unfetched] | None = None
) -> tuple[Found, ...]:
    """url() references (requisites) and @import targets (expand=True); references with
    schemes not fetched are added to ``unfetched`` if given."""
    out = _Collector(unfetched)
    try:
        if isinstance(body, bytes):
            decoded = tinycss2.bytes.decode_stylesheet_bytes(body[: discover.MAX_BODY])
            text: str = decoded[0]
        else:
            text = body[: discover.MAX_BODY]
        tokens: list[object] = list(tinycss2.parse_component_value_list(text, skip_comments=True))
        _css_walk(tokens, base_url, out)
    except Exception:  # malformed input: keep what was found
        pass
    return out.result()
