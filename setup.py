"""Packaging: the JSON schemas are shipped from the one ``schemas/`` folder.

``schemas/`` at the top of the source tree is the single source of truth for every format
archiver writes.  It is installed as the data-only package ``archiver.schemas`` straight
from that folder (``package_dir``), so a wheel, an sdist and an editable install all read
the same files and no copy exists that could drift.  Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["archiver", "archiver.*"]), "archiver.schemas"],
    package_dir={"archiver.schemas": "schemas"},
    package_data={"archiver": ["py.typed"], "archiver.schemas": ["*.json"]},
)
