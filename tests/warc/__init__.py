"""Tests of archiver.warc: writing WARC files and reading them back, ours and other tools'."""
