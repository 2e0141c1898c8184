"""Tests of archiver.trust: signing keys, the signed manifest, the custody log and RFC 3161
time-stamps."""
