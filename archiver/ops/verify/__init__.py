"""Verify an archive: signatures, files, records and index rows; locate every change.

For each signed capture (see :mod:`archiver.trust.manifest`):

1. the manifest's signature, with the public key the archive holds for the signer
   (or a key given with ``--trusted-key``); a signer outside the trusted keys fails;
2. each WARC file the manifest lists: its size and SHA-256, and in the same single
   pass every record's WARC head (record id, type, target URI), block digest and
   payload digest.  When a file differs, a second pass hashes each record's stored
   bytes against the manifest to say which records changed, went missing or were
   added;
3. every ``captures`` and ``records`` row of the index against the signed manifest,
   column by column, so an edited, missing or added row is caught (the index is
   derived data: rebuilt or compacted, it still verifies);
4. that no WARC file, record or row claims the capture without the manifest listing it;
5. that each revisit's original is signed by the same key (or a trusted one) and
   still holds the payload: its digest recomputed from the stored bytes.

A capture of ours without a manifest or without a signature fails (unsigned, or
incomplete); one still running (holding its lock) is left out, as in progress.
WARC files written by other tools are checked for internal consistency only (every
declared digest), and the report says so.  Without trusted keys, captures signed by
more than one key fail: nothing says which is the archivist's.

The parts: :mod:`.run` (the flow), :mod:`.targets` (what the paths name),
:mod:`.captures` and :mod:`.records` (signed captures, their files and records),
:mod:`.unsigned` (files no signature covers), :mod:`.revisits`, :mod:`.index_rows`,
:mod:`.custody_log`, :mod:`.reading` (file access) and :mod:`.report` (the verdicts).
"""

from archiver.ops.verify.captures import MANIFEST_LIMIT, SIGNATURE_LENGTH, signature_problem
from archiver.ops.verify.reading import read_regular
from archiver.ops.verify.report import (
    SIGNERS_SHOWN,
    CaptureResult,
    Check,
    FileResult,
    Problem,
    Report,
    VerifyUsage,
)
from archiver.ops.verify.run import SIGNING_WAIT, verify
from archiver.ops.verify.targets import plan, trusted_keys

__all__ = [
    "MANIFEST_LIMIT",
    "SIGNATURE_LENGTH",
    "SIGNERS_SHOWN",
    "SIGNING_WAIT",
    "CaptureResult",
    "Check",
    "FileResult",
    "Problem",
    "Report",
    "VerifyUsage",
    "plan",
    "read_regular",
    "signature_problem",
    "trusted_keys",
    "verify",
]
