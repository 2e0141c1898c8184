"""Tests of archiver.web: HTTP as servers really send it, page parsing, platforms, yt-dlp,
and the private-address rule."""
