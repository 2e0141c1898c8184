"""Tests of the whole product rather than one layer: the built wheel and sdist, a fresh
clone, replay in pywb, a disk that really fills up."""
