"""Tests of archiver.capture: captures end to end, their budgets, dedup and recaptures,
and what they write."""
