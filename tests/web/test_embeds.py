"""Social-media embeds in static HTML (archiver.web.discover.html): the markup a platform's
widget script turns into an iframe player, read from the HTML as served, no network."""

from __future__ import annotations

import time

import pytest

from archiver.web.discover import Found, parse_html
from archiver.web.discover.html import EMBED_VIAS

PORTAL = "https://portal.example/news/2024/article.html"
EMBED_TWEET = "blockquote.twitter-tweet"


def embeds(body: str, base: str = PORTAL) -> list[tuple[str, str]]:
    """(url, via) of every embedded post found, in document order."""
    info = parse_html(body.encode("utf-8"), base, "text/html; charset=utf-8")
    found = [f for f in info.resources if f.via in EMBED_VIAS]
    for f in found:  # the widget's player is an iframe, but not at the post's URL
        assert (f.role, f.expand) == ("iframe", False), f
    return [(f.url, f.via) for f in found]


def tweet(link: str, cls: str = "twitter-tweet") -> str:
    """A blockquote as publish.twitter.com writes it: text with its own links, then the
    post's link last."""
    return (
        f'<blockquote class="{cls}" data-lang="en"><p lang="en" dir="ltr">Breaking '
        '<a href="https://twitter.com/hashtag/news?src=hash&amp;ref_src=twsrc%5Etfw">#news</a>'
        ' <a href="https://twitter.com/someone?ref_src=twsrc%5Etfw">@someone</a>'
        ' <a href="https://t.co/AbCdEf">pic.twitter.com/AbCdEf</a></p>&mdash; Name (@user)'
        f' <a href="{link}">March 1, 2024</a></blockquote>'
        '<script async src="https://platform.twitter.com/widgets.js" charset="utf-8"></script>'
    )


# ------------------------------------------------------------------ the seed's page


def test_a_portal_article_with_a_telegram_post_and_two_tweets() -> None:
    page = (
        "<article><h1>News</h1><p>Text.</p>"
        '<script async src="https://telegram.org/js/telegram-widget.js?22"'
        ' data-telegram-post="nexta_live/65432" data-width="100%"></script>'
        + tweet("https://twitter.com/nexta_tv/status/1830000000000000001?ref_src=twsrc%5Etfw")
        + tweet("https://x.com/Tsihanouskaya/status/1830000000000000002?ref_src=twsrc%5Etfw")
        + "</article>"
    )
    assert embeds(page) == [
        ("https://t.me/nexta_live/65432", "script[data-telegram-post]"),
        ("https://twitter.com/nexta_tv/status/1830000000000000001", "blockquote.twitter-tweet"),
        ("https://x.com/Tsihanouskaya/status/1830000000000000002", "blockquote.twitter-tweet"),
    ]
    # the widget scripts are still requisites, the links still outlinks
    info = parse_html(page.encode(), PORTAL)
    scripts = [f.url for f in info.resources if f.via == "script[src]"]
    assert scripts == [
        "https://telegram.org/js/telegram-widget.js?22",
        "https://platform.twitter.com/widgets.js",
    ]
    assert "https://t.co/AbCdEf" in [f.url for f in info.outlinks]


# ------------------------------------------------------------------ Telegram


def test_telegram_posts_from_the_script_and_the_blockquote() -> None:
    page = (
        '<script async src="https://telegram.org/js/telegram-widget.js"'
        ' data-telegram-post="durov/43"></script>'
        '<blockquote class="telegram-post" data-telegram-post=" Breaking_News/7 ">x</blockquote>'
    )
    assert embeds(page) == [
        ("https://t.me/durov/43", "script[data-telegram-post]"),
        ("https://t.me/Breaking_News/7", "blockquote.telegram-post[data-telegram-post]"),
    ]


@pytest.mark.parametrize(
    "value",
    [
        "foo",
        "",
        "durov",
        "durov/",
        "/43",
        "du/43",  # shorter than any channel name
        "durov/43/1",
        "durov/4x",
        "durov/43?single",
        "дуров/43",
        "durov/٤٣",  # Arabic-Indic digits are digits to \d, not to Telegram
        "https://t.me/durov/43",  # the widget would load t.me/https://...: no post
        "javascript:alert(1)",
        "../durov/43",
        "a" * 100_000 + "/1",
    ],
)
def test_telegram_values_that_name_no_post_are_ignored(value: str) -> None:
    page = (
        f'<script data-telegram-post="{value}"></script>'
        f'<blockquote class="telegram-post" data-telegram-post="{value}"></blockquote>'
    )
    assert embeds(page) == []


def test_telegram_needs_the_convention_not_just_the_attribute() -> None:
    page = (
        '<div data-telegram-post="durov/43"></div>'  # no widget reads a div's
        '<blockquote data-telegram-post="durov/44"></blockquote>'  # no class
        '<script data-telegram-discussion="durov/45"></script>'  # comments, not a post
    )
    assert embeds(page) == []


# ------------------------------------------------------------------ X/Twitter


def test_a_tweet_is_its_last_status_link_without_tracking() -> None:
    page = tweet("https://twitter.com/user/status/1234567890?ref_src=twsrc%5Etfw")
    assert embeds(page) == [("https://twitter.com/user/status/1234567890", EMBED_TWEET)]


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("https://x.com/user/status/42", "https://x.com/user/status/42"),
        ("https://X.COM/user/status/42#frag", "https://x.com/user/status/42"),
        ("https://mobile.twitter.com/user/status/42", "https://mobile.twitter.com/user/status/42"),
        ("https://twitter.com/user/status/42/video/1", "https://twitter.com/user/status/42"),
        ("https://twitter.com/i/web/status/42", "https://twitter.com/i/web/status/42"),
        ("//twitter.com/user/status/42", "https://twitter.com/user/status/42"),
    ],
)
def test_tweet_links_on_either_host(link: str, expected: str) -> None:
    assert embeds(tweet(link)) == [(expected, EMBED_TWEET)]


def test_a_video_tweet() -> None:
    page = tweet("https://twitter.com/user/status/77", cls="twitter-video")
    assert embeds(page) == [("https://twitter.com/user/status/77", "blockquote.twitter-video")]


def test_the_post_link_a_few_levels_down_and_the_last_of_several() -> None:
    page = (
        '<blockquote class="twitter-tweet"><div><p>quoting'
        ' <a href="https://twitter.com/other/status/1">an older post</a></p></div>'
        '<p>&mdash; <span><a href="https://twitter.com/user/status/2">date</a></span></p>'
        "</blockquote>"
    )
    assert embeds(page) == [("https://twitter.com/user/status/2", EMBED_TWEET)]


@pytest.mark.parametrize(
    "page",
    [
        # no status link: profiles, hashtags, t.co, another site's "status" path
        tweet("https://twitter.com/user"),
        tweet("https://twitter.com/hashtag/status"),
        tweet("https://example.org/user/status/42"),
        tweet("https://twitter.com/user/status/"),
        tweet("https://twitter.com/user/status/abc"),
        tweet("javascript:alert('https://twitter.com/user/status/42')"),
        tweet(""),
        # a relative link on a portal is the portal's
        tweet("/user/status/42"),
        # a status link outside the convention: an outlink only
        '<blockquote><a href="https://twitter.com/user/status/42">x</a></blockquote>',
        '<div class="twitter-tweet"><a href="https://twitter.com/user/status/42">x</a></div>',
        '<blockquote class="Twitter-Tweet"><a href="https://twitter.com/u/status/42">x</a>'
        "</blockquote>",
        '<blockquote class="twitter-tweet-rendered"><a href="https://x.com/u/status/4">x</a>'
        "</blockquote>",
        '<p><a href="https://twitter.com/user/status/42">a linked post</a></p>',
    ],
)
def test_not_a_tweet_embed(page: str) -> None:
    assert embeds(page) == []


def test_the_same_tweet_embedded_twice_is_one_post() -> None:
    page = tweet("https://twitter.com/u/status/9?ref_src=a") + tweet(
        "https://twitter.com/u/status/9?ref_src=b"
    )
    assert embeds(page) == [("https://twitter.com/u/status/9", EMBED_TWEET)]


# ------------------------------------------------------------------ Instagram, TikTok


def test_an_instagram_post_without_its_tracking_query() -> None:
    page = (
        '<blockquote class="instagram-media" data-instgrm-captioned'
        ' data-instgrm-permalink="https://www.instagram.com/reel/C1a2B3c4/?utm_source=ig_embed'
        '&amp;utm_campaign=loading" data-instgrm-version="14"><a href="x">View</a></blockquote>'
        '<blockquote class="instagram-media" data-instgrm-permalink="//instagram.com/p/Xy_-9/">'
        "</blockquote>"
    )
    assert embeds(page) == [
        (
            "https://www.instagram.com/reel/C1a2B3c4/",
            "blockquote.instagram-media[data-instgrm-permalink]",
        ),
        ("https://instagram.com/p/Xy_-9/", "blockquote.instagram-media[data-instgrm-permalink]"),
    ]


@pytest.mark.parametrize(
    "permalink",
    ["https://www.instagram.com/someone/", "https://example.org/p/abc/", "/p/abc/", "", "p"],
)
def test_instagram_permalinks_that_are_no_post(permalink: str) -> None:
    page = f'<blockquote class="instagram-media" data-instgrm-permalink="{permalink}"></blockquote>'
    assert embeds(page) == []
    assert (
        embeds('<div class="instagram-media" data-instgrm-permalink="https://instagram.com/p/a/">')
        == []
    )


def test_tiktok_cite_first_then_the_video_id() -> None:
    cite = "https://www.tiktok.com/@scout2015/video/6718335390845095173"
    page = (
        f'<blockquote class="tiktok-embed" cite="{cite}" data-video-id="6718335390845095173">'
        '<section><a href="https://www.tiktok.com/@scout2015">@scout2015</a></section>'
        "</blockquote>"
        '<blockquote class="tiktok-embed" data-video-id=" 7000000000000000001 "></blockquote>'
        # a cite that is no post: the id, as the widget would use
        '<blockquote class="tiktok-embed" cite="javascript:void(0)" data-video-id="42">'
        "</blockquote>"
    )
    assert embeds(page) == [
        (cite, "blockquote.tiktok-embed[cite]"),
        (
            "https://www.tiktok.com/embed/v2/7000000000000000001",
            "blockquote.tiktok-embed[data-video-id]",
        ),
        ("https://www.tiktok.com/embed/v2/42", "blockquote.tiktok-embed[data-video-id]"),
    ]


@pytest.mark.parametrize(
    "attrs",
    [
        'cite="https://www.tiktok.com/@scout2015"',
        'data-video-id="abc"',
        'data-video-id="12/../34"',
        'data-video-id="١٢٣"',
        'data-video-id=""',
        "",
    ],
)
def test_tiktok_values_that_name_no_video(attrs: str) -> None:
    assert embeds(f'<blockquote class="tiktok-embed" {attrs}></blockquote>') == []


# ------------------------------------------------------------------ Facebook


def test_facebook_video_and_post_plugins_on_any_element() -> None:
    page = (
        '<div class="fb-video" data-href="https://www.facebook.com/facebook/videos/10153231379946729/"'
        ' data-width="500" data-show-text="false"></div>'
        '<section class="embed fb-post" data-href="https://www.facebook.com/20531316728/posts/'
        '10154009990506729/"></section>'
    )
    assert embeds(page) == [
        ("https://www.facebook.com/facebook/videos/10153231379946729/", ".fb-video[data-href]"),
        ("https://www.facebook.com/20531316728/posts/10154009990506729/", ".fb-post[data-href]"),
    ]


def test_a_relative_data_href_is_resolved_against_the_page_base() -> None:
    page = (
        '<head><base href="https://www.facebook.com/nexta.tv/"></head>'
        '<div class="fb-video" data-href="videos/123456/"></div>'
    )
    assert embeds(page) == [
        ("https://www.facebook.com/nexta.tv/videos/123456/", ".fb-video[data-href]")
    ]
    # on a portal the same value is the portal's: no post
    assert embeds('<div class="fb-video" data-href="videos/123456/"></div>') == []


@pytest.mark.parametrize(
    "markup",
    [
        '<div class="fb-video" data-href="https://www.facebook.com/"></div>',
        '<div class="fb-post" data-href="https://www.facebook.com/nextatv"></div>',
        '<div class="fb-comments" data-href="https://www.facebook.com/x/videos/1/"></div>',
        '<div data-href="https://www.facebook.com/x/videos/1/"></div>',
        '<div class="fb-video" data-href="https://example.org/x/videos/1/"></div>',
        '<div class="fb-video" data-href="javascript:alert(1)"></div>',
        '<div class="fb-video" data-href=""></div>',
        '<div class="fb-video"></div>',
    ],
)
def test_facebook_markup_that_names_no_post(markup: str) -> None:
    assert embeds(markup) == []


# ------------------------------------------------------------------ YouTube, Vimeo


def test_lazy_youtube_and_vimeo_players() -> None:
    page = (
        '<lite-youtube videoid="dQw4w9WgXcQ" params="start=10"></lite-youtube>'
        '<div class="player" data-youtube-id="aqz-KE-bpKQ"><img src="/thumb.jpg"></div>'
        '<span data-youtube-id=" _x_y_z-1234 "></span>'
        '<lite-vimeo videoid="76979871"></lite-vimeo>'
    )
    assert embeds(page) == [
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "lite-youtube[videoid]"),
        ("https://www.youtube.com/watch?v=aqz-KE-bpKQ", "[data-youtube-id]"),
        ("https://www.youtube.com/watch?v=_x_y_z-1234", "[data-youtube-id]"),
        ("https://vimeo.com/76979871", "lite-vimeo[videoid]"),
    ]


@pytest.mark.parametrize(
    "markup",
    [
        '<lite-youtube videoid="dQw4w9WgXc"></lite-youtube>',  # ten characters
        '<lite-youtube videoid="dQw4w9WgXcQQ"></lite-youtube>',  # twelve
        '<lite-youtube videoid="dQw4w9/gXcQ"></lite-youtube>',
        '<lite-youtube videoid="dQw4w9wgXcЯ"></lite-youtube>',
        "<lite-youtube></lite-youtube>",
        '<div videoid="dQw4w9WgXcQ"></div>',
        '<div data-youtube-id="https://youtu.be/dQw4w9WgXcQ"></div>',
        '<div data-youtube-id=""></div>',
        '<lite-vimeo videoid="abc"></lite-vimeo>',
        '<lite-vimeo videoid="-1"></lite-vimeo>',
    ],
)
def test_player_ids_that_are_no_video(markup: str) -> None:
    assert embeds(markup) == []


# ------------------------------------------------------------------ everything together


def every_convention() -> str:
    return (
        '<script data-telegram-post="a_channel/1"></script>'
        '<blockquote class="telegram-post" data-telegram-post="a_channel/2"></blockquote>'
        + tweet("https://twitter.com/u/status/3")
        + tweet("https://x.com/u/status/4", cls="twitter-video")
        + '<blockquote class="instagram-media" data-instgrm-permalink="https://www.instagram.com/p/Five/">'
        "</blockquote>"
        '<blockquote class="tiktok-embed" cite="https://www.tiktok.com/@u/video/6"></blockquote>'
        '<blockquote class="tiktok-embed" data-video-id="7"></blockquote>'
        '<div class="fb-video" data-href="https://www.facebook.com/u/videos/8/"></div>'
        '<div class="fb-post" data-href="https://www.facebook.com/u/posts/9"></div>'
        '<lite-youtube videoid="AAAAAAAAA10"></lite-youtube>'
        '<div data-youtube-id="AAAAAAAAA11"></div>'
        '<lite-vimeo videoid="12"></lite-vimeo>'
    )


def test_every_via_is_made_by_some_convention() -> None:
    found = embeds(every_convention())
    assert len(found) == 12
    assert {via for _, via in found} == EMBED_VIAS


def test_embeds_in_an_iframe_srcdoc_are_the_pages() -> None:
    page = "<iframe srcdoc='<script data-telegram-post=\"durov/43\"></script>'></iframe>"
    assert embeds(page) == [("https://t.me/durov/43", "script[data-telegram-post]")]


def test_an_embed_does_not_weaken_an_iframe_of_the_same_url() -> None:
    # the same URL as a real iframe too: fetched as that iframe (expanded), as before
    url = "https://www.facebook.com/u/videos/8/"
    page = f'<div class="fb-video" data-href="{url}"></div><iframe src="{url}"></iframe>'
    info = parse_html(page.encode(), PORTAL)
    assert [f for f in info.resources if f.url == url] == [
        Found(url, "iframe", "iframe[src]", True)
    ]


# ------------------------------------------------------------------ hostile markup


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "\x00",
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "https://",
        "http://[::1",
        "https://www.instagram.com:99999/p/x/",
        "https://\u043f\u0440\u0438\u043c\u0435\u0440.\u0440\u0444/p/x/",  # an IDN host
        "\U0001f600" * 1000,
        "https://www.facebook.com/u/videos/" + "9" * 2_000_000,
        "x" * 5_000_000,
    ],
)
def test_hostile_values_never_raise_and_name_nothing(value: str) -> None:
    quoted = value.replace("&", "&amp;").replace('"', "&quot;")
    page = "".join(
        [
            f'<script data-telegram-post="{quoted}"></script>',
            f'<blockquote class="telegram-post" data-telegram-post="{quoted}"></blockquote>',
            f'<blockquote class="twitter-tweet"><a href="{quoted}">x</a></blockquote>',
            f'<blockquote class="instagram-media" data-instgrm-permalink="{quoted}"></blockquote>',
            f'<blockquote class="tiktok-embed" cite="{quoted}" data-video-id="{quoted}">',
            "</blockquote>",
            f'<div class="fb-video fb-post" data-href="{quoted}"></div>',
            f'<lite-youtube videoid="{quoted}"></lite-youtube>',
            f'<div data-youtube-id="{quoted}"></div>',
            f'<lite-vimeo videoid="{quoted}"></lite-vimeo>',
            f'<blockquote class="{quoted}"></blockquote>',
        ]
    )
    assert embeds(page) == []


def test_nested_tweet_blockquotes_cost_each_node_a_few_visits() -> None:
    # 100 chains of 500 nested tweet blockquotes, each with a post link (2 MB): the link
    # search goes a few levels down (under a second here), not to the bottom of every
    # chain (12.5 million visits: 26 s here)
    chain = (
        '<blockquote class="twitter-tweet"><a href="https://x.com/u/status/1">d</a>' * 500
        + "</blockquote>" * 500
    )
    started = time.monotonic()
    found = embeds(chain * 100)
    assert time.monotonic() - started < 5
    assert found == [("https://x.com/u/status/1", EMBED_TWEET)]
