"""A real signed archive for the fuzzers to damage (a capture of the fixture site with a
time-stamp token and a custody log), and what a custody log that verifies must hold."""

from __future__ import annotations

from pathlib import Path

from archiver.capture.run import Capturer
from archiver.core.model import CaptureOptions
from archiver.ops.verify import verify
from archiver.trust import custody
from archiver.trust.timestamp import Authority, Timestamper
from tests.support.deterministic import FixedClock, fixed_signer, sequential_ids
from tests.support.site import FixtureSite
from tests.support.tsa import LocalTSA, make_pki


def signed_stamped_archive(archive: Path, page: str, pki_dir: Path) -> Path:
    """A signed capture of the fixture site's ``page`` (fixed clock, ids and key), with a
    time-stamp token and a custody log; it verifies."""
    with FixtureSite(slow_seconds=0.1) as site:
        capture = Capturer(
            CaptureOptions(
                archive_dir=archive, timeout=1.5, platform_videos=False, allow_private=True
            ),
            clock=FixedClock(),
            new_id=lambda moment: "20200812100000-0123456789",
            new_record_id=sequential_ids(),
            hostname="fuzz",
            signer=fixed_signer(),
        ).capture(site.url(page))
    assert capture.manifest is not None
    stamp_and_log(archive, capture.manifest, pki_dir)
    assert verify(archive).ok
    return archive


def stamp_and_log(archive: Path, manifest: Path, pki_dir: Path) -> None:
    """A time-stamp token (a real local TSA) and a custody log of three events."""
    pki = make_pki(pki_dir)
    with LocalTSA(pki) as tsa:
        stamper = Timestamper([Authority.of(tsa.url)], [pki.root])
        assert all(s.ok for s in stamper.stamp(manifest))
    log = custody.CustodyLog(archive, fixed_signer(), hostname="fuzz", clock=FixedClock())
    (token,) = archive.rglob("*.tsr")
    log.append("capture", captures=["20200812100000-0123456789"])
    log.append("timestamp", captures=["20200812100000-0123456789"],
               files=[custody.FileRef.of(token, archive)])  # fmt: skip
    log.append("verify", captures=["20200812100000-0123456789"])


def accepted_events_are_original(report: custody.CustodyReport, original: bytes) -> bool:
    """A log that verifies holds the original events, in order, perhaps with the last ones
    missing (which the log alone cannot show; ``archiver custody`` prints the head for that)."""
    accepted = [e.raw for e in report.entries if e.event is not None]
    return accepted == original.splitlines()[: len(accepted)]
