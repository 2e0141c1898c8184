"""Trusted timestamps: RFC 3161 tokens from time-stamping authorities, for signed captures.

A signature says who vouches for a capture, not when: a signer could sign an old
capture today and claim any date.  A time-stamp token from an authority (a TSA) binds
the hash of the manifest's signature to the authority's clock, so the capture is
proved to have existed, signed, at that time.

Each authority's token is stored beside the signature it stamps, as
``<capture_id>.manifest.json.sig.<authority>.tsr`` (a DER TimeStampResp, what
``openssl ts -reply`` writes and ``openssl ts -verify -in`` reads), and the
authority's certificate chain as ``tsa/<authority>/<TSA certificate sha256>.pem``
(TSA certificate first, root last).  A token is checked on receipt (imprint, nonce,
chain, key usage, signature) and stored only if it holds; an authority that cannot be
reached or whose answer does not hold is a :class:`Stamp` with an ``error``: the
capture stays signed and kept, and ``archiver timestamp`` can ask again later.

With no root configured (no ``--tsa-ca``: the machine's roots), a token whose chain
reaches none of them is still kept, exactly as received, when everything else holds
(imprint, nonce, key usage, each certificate of its chain valid at its time, the CMS
signature by the TSA certificate's key): asking again later could only prove a later
time.  It is marked :data:`UNCHECKED` (``root_checked`` false in the JSON, in the
custody event's detail, by ``verify``), its chain saved as far as the token's
certificates reach, as ``tsa/<authority>/<TSA certificate sha256>.unchecked.pem``; it is
no trusted time until ``verify --tsa-ca`` finds its chain reaching a root given there.
With ``--tsa-ca``, such a token is refused: the roots given say whom to trust.

``verify`` checks every token offline (:func:`check_tokens`).  The cryptography
itself is in :mod:`archiver.trust.rfc3161` (with :mod:`~archiver.trust.cms` and
:mod:`~archiver.trust.certificates`).
"""

from __future__ import annotations

import bisect
import hashlib
import http.client
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509

from archiver import __version__
from archiver.core.atomic import atomic_path
from archiver.core.errors import UsageProblem
from archiver.core.model import Stamp, isoformat, utcnow
from archiver.core.urls import check_url
from archiver.trust import rfc3161
from archiver.trust.certificates import (
    certificate_pem,
    certificate_sha256,
    is_self_issued,
    load_certificates,
)
from archiver.trust.manifest import (
    MANIFEST_SUFFIX,
    SIGNATURE_SUFFIX,
    Manifest,
    ManifestError,
    archive_of,
    capture_id_of,
    signature_path,
)

TOKEN_SUFFIX = ".tsr"
TSA_DIR = "tsa"
HEAD_STAMPS = "stamps"  # under custody/: tokens over the custody log's last event
UNCHECKED_CHAIN_SUFFIX = ".unchecked.pem"  # a chain saved as far as the token's certificates go
# the mark of a token kept although its chain reached no root the capturing machine
# trusted (no --tsa-ca given): in the custody event's detail, where verify looks for it
UNCHECKED = "chain not checked against a trusted root at capture"
DEFAULT_TSA_TIMEOUT = 30.0
RESPONSE_LIMIT = 1024 * 1024  # a time-stamp response is a few kilobytes
CERTIFICATES_LIMIT = 4 * 1024 * 1024
# how far before the manifest's signing time (by the capturing machine's clock) a
# token's time may be: the machine's clock may run a little fast
CLOCK_TOLERANCE = timedelta(minutes=10)
SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
)
_NAME_SAFE = re.compile(r"[^a-z0-9.-]+")


class TimestampUsage(UsageProblem, ValueError):
    """An authority URL or a root certificate file cannot be used (a user error)."""


@dataclass(frozen=True)
class Authority:
    """A time-stamping authority: its URL and the name its files carry."""

    url: str
    name: str

    @classmethod
    def of(cls, url: str) -> Authority:
        """The authority at ``url`` (http or https); its name is its host, and its port
        when not the default, made safe for a file name."""
        try:
            checked = check_url(url)
        except ValueError as exc:
            raise TimestampUsage(f"--tsa {url}: {exc}") from exc
        parts = urllib.parse.urlsplit(checked)
        host = (parts.hostname or "").lower()
        name = _NAME_SAFE.sub("-", host).strip("-.") or "tsa"
        if parts.port is not None:
            name += f"-{parts.port}"
        return cls(checked, name)


def authorities(urls: list[str] | tuple[str, ...]) -> list[Authority]:
    """The authorities of ``--tsa`` values; two with one name are a :class:`TimestampUsage`."""
    found: dict[str, Authority] = {}
    for url in urls:
        authority = Authority.of(url)
        other = found.get(authority.name)
        if other is not None and other.url != authority.url:
            raise TimestampUsage(
                f"--tsa {url} and --tsa {other.url} would share the file name "
                f"{authority.name!r}; give one URL per authority host"
            )
        found[authority.name] = authority
    return list(found.values())


def read_certificates(path: Path) -> list[x509.Certificate]:
    """The certificates of a PEM (or DER) file; a :class:`TimestampUsage` naming it."""
    try:
        with path.open("rb") as handle:
            data = handle.read(CERTIFICATES_LIMIT + 1)
    except OSError as exc:
        raise TimestampUsage(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > CERTIFICATES_LIMIT:
        raise TimestampUsage(f"{path} is too large for a certificate file")
    try:
        certificates = load_certificates(data)
    except ValueError as exc:
        raise TimestampUsage(f"{path} holds no certificate ({exc})") from exc
    if not certificates:
        raise TimestampUsage(f"{path} holds no certificate")
    return certificates


def system_roots() -> list[x509.Certificate]:
    """The machine's trusted roots (for a public authority whose root was not given)."""
    candidates = [ssl.get_default_verify_paths().cafile, *SYSTEM_BUNDLES]
    for name in candidates:
        if name and Path(name).is_file():
            try:
                return read_certificates(Path(name))
            except TimestampUsage:
                continue
    return []


def token_path(manifest: Path, authority: str) -> Path:
    return manifest.with_name(f"{manifest.name}.sig.{authority}{TOKEN_SUFFIX}")


def tokens_of(manifest: Path, listed: list[str] | None = None) -> list[tuple[str, Path]]:
    """The tokens stored for a manifest's signature: (authority, file), by name.
    ``listed``: the names in the manifest's folder, sorted, when the caller has them
    (verify lists each folder once, not once per capture: in time linear in captures)."""
    prefix = f"{manifest.name}.sig."
    found = []
    names: list[str] = []
    if listed is not None:  # sorted: the names that start with the prefix are together
        at = bisect.bisect_left(listed, prefix)
        while at < len(listed) and listed[at].startswith(prefix):
            names.append(listed[at])
            at += 1
    else:
        try:
            names = sorted(p.name for p in manifest.parent.iterdir())
        except OSError:
            return []
    for name in names:
        if name.startswith(prefix) and name.endswith(TOKEN_SUFFIX):
            authority = name[len(prefix) : -len(TOKEN_SUFFIX)]
            if authority:
                found.append((authority, manifest.with_name(name)))
    return found


def manifest_of_token(path: Path) -> Path | None:
    """The manifest a token file stamps the signature of, by its name."""
    name = path.name
    marker = SIGNATURE_SUFFIX + "."
    if not name.endswith(TOKEN_SUFFIX) or marker not in name:
        return None
    return path.with_name(name[: name.rindex(marker)] + MANIFEST_SUFFIX)


def head_token_path(archive: Path, seq: int, digest: str, authority: str) -> Path:
    """Where a token over the custody log's event ``seq`` (whose line hashes to
    ``digest``) is kept: ``custody/stamps/<seq>-<sha256>.<authority>.tsr``."""
    return archive / "custody" / HEAD_STAMPS / f"{seq:08d}-{digest}.{authority}{TOKEN_SUFFIX}"


_HEAD_TOKEN = re.compile(r"^(\d{8,})-([0-9a-f]{64})\.(.+)\.tsr$")


class Timestamper:
    """Asks each authority for a token over a manifest's signature, checks it, keeps it."""

    def __init__(
        self,
        authorities: list[Authority],
        roots: list[x509.Certificate],
        *,
        timeout: float = DEFAULT_TSA_TIMEOUT,
        keep_unchecked: bool = False,
        unchecked_refused: str | None = None,
    ) -> None:
        """``keep_unchecked``: keep a token whose chain reaches none of ``roots`` (given
        when no root was configured and ``roots`` are the machine's), marked
        :data:`UNCHECKED`, when everything else about it holds.  ``unchecked_refused``:
        why such a token is not kept although no root was configured (the custody event
        that would carry the mark cannot be signed), said with the authority's error."""
        self.authorities = authorities
        self.roots = roots
        self.timeout = timeout
        self.keep_unchecked = keep_unchecked
        self.unchecked_refused = unchecked_refused

    def stamp(self, manifest: Path, *, again: bool = False) -> list[Stamp]:
        """A token from every authority for ``manifest``'s signature (already stamped
        ones are skipped unless ``again``); never raises for an authority's trouble.
        The chains are saved in the manifest's own archive."""
        capture_id = capture_id_of(manifest)
        archive = archive_of(manifest)
        stamps = []
        try:
            signature = signature_path(manifest).read_bytes()
        except OSError as exc:
            return [
                Stamp(capture_id, a.name, a.url, error=f"the capture is not signed ({exc})")
                for a in self.authorities
            ]
        try:  # a token's time is checked against the signing time on receipt
            signed_at = Manifest.from_bytes(manifest.read_bytes()).signed_at
        except (OSError, ManifestError) as exc:
            return [
                Stamp(capture_id, a.name, a.url, error=f"the manifest cannot be read ({exc})")
                for a in self.authorities
            ]
        for authority in self.authorities:
            target = token_path(manifest, authority.name)
            stamp = Stamp(capture_id, authority.name, authority.url)
            if target.exists() and not again:
                stamp.already = True
                stamp.token = _shown(target, archive)
                try:
                    stamp.time = rfc3161.read_token(target.read_bytes()).time
                except (OSError, rfc3161.TokenProblem) as exc:
                    stamp.error = f"the token there cannot be read: {exc}"
                stamps.append(stamp)
                continue
            self._stamp_kept(stamp, authority, signature, signed_at, target, archive)
            stamps.append(stamp)
        return stamps

    def stamp_head(
        self, archive: Path, line: bytes, seq: int, *, again: bool = False
    ) -> list[Stamp]:
        """A token from every authority over the custody log's last event (``line``, its
        ``seq``): it proves the log reached that event by the token's time, so a tail cut
        later is found (:func:`check_head_tokens`).  Kept as :func:`head_token_path`."""
        from archiver.trust.custody import Event

        when = Event.from_line(line).time
        digest = hashlib.sha256(line).hexdigest()
        stamps = []
        for authority in self.authorities:
            target = head_token_path(archive, seq, digest, authority.name)
            stamp = Stamp("", authority.name, authority.url)
            if target.exists() and not again:
                stamp.already = True
                stamp.token = _shown(target, archive)
                stamps.append(stamp)
                continue
            self._stamp_kept(stamp, authority, line, when, target, archive)
            stamps.append(stamp)
        return stamps

    def _stamp_kept(
        self,
        stamp: Stamp,
        authority: Authority,
        data: bytes,
        when: datetime,
        target: Path,
        archive: Path,
    ) -> None:
        """:meth:`_stamp`, any failure kept in ``stamp.error``: the other authorities are
        asked whatever one of them answers."""
        try:
            self._stamp(stamp, authority, data, when, target, archive)
        except rfc3161.TokenProblem as exc:
            stamp.error = f"{authority.url}: {exc}"
        except OSError as exc:
            stamp.error = f"cannot write the token {target}: {exc.strerror or exc}"
        except Exception as exc:  # whatever an answer does, the other authorities are asked
            stamp.error = f"{authority.url}: the answer cannot be checked ({exc!r})"

    def _stamp(
        self,
        stamp: Stamp,
        authority: Authority,
        signature: bytes,
        signed_at: datetime,
        target: Path,
        archive: Path,
    ) -> None:
        request, nonce = rfc3161.timestamp_request(signature)
        answer = self._ask(authority, request)
        checked = True
        try:
            info, chain = rfc3161.check_token(answer, signature, self.roots, nonce=nonce)
        except rfc3161.UntrustedChain as exc:
            if not self.keep_unchecked:
                if self.unchecked_refused:
                    raise rfc3161.UntrustedChain(f"{exc}; {self.unchecked_refused}") from exc
                raise
            # all but the root holds so far; the CMS signature is checked here
            info, chain = rfc3161.check_token_unrooted(answer, signature, nonce=nonce)
            checked = False
        # the rule verify applies: a token it would find early or in the future, never
        # to hold, is refused now (it could not be dropped later: the custody log has it)
        problem = time_problem(info, signed_at, utcnow())
        if problem is not None:
            raise rfc3161.TokenProblem(problem)
        ends = chain_end(chain)
        _save_chain(archive, authority.name, chain, checked=checked)
        if target.exists():  # again: the earlier token is kept beside, never replaced
            target = target.with_name(
                f"{target.name.removesuffix(TOKEN_SUFFIX)}.{info.serial}{TOKEN_SUFFIX}"
            )
        with atomic_path(target) as temp:
            temp.write_bytes(answer)
        stamp.token = _shown(target, archive)
        stamp.time = info.time
        stamp.root_checked = checked
        stamp.chain_end = ends

    def _ask(self, authority: Authority, request: bytes) -> bytes:
        query = urllib.request.Request(
            authority.url,
            data=request,
            method="POST",
            headers={
                "Content-Type": "application/timestamp-query",
                "Accept": "application/timestamp-reply",
                "User-Agent": f"archiver/{__version__}",
            },
        )
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(query, timeout=self.timeout) as response:
                answer: bytes = response.read(RESPONSE_LIMIT + 1)
        except urllib.error.HTTPError as exc:
            raise rfc3161.TokenProblem(
                f"the authority answered HTTP {exc.code} {exc.reason}"
            ) from exc
        except http.client.HTTPException as exc:  # not HTTP at all, or cut short
            raise rfc3161.TokenProblem(f"the authority's answer is not HTTP ({exc!r})") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise rfc3161.TokenProblem(f"cannot reach the authority: {reason}") from exc
        if len(answer) > RESPONSE_LIMIT:
            raise rfc3161.TokenProblem("the authority's answer is too large for a time-stamp")
        return answer


def _save_chain(
    archive: Path, authority: str, chain: list[x509.Certificate], *, checked: bool = True
) -> None:
    """``tsa/<authority>/<TSA certificate sha256>.pem``, the chain to a trusted root; a
    chain not checked against one (it may lack the root) is saved beside, never in its
    place, so that a later chain to a root is saved whole."""
    target = archive / TSA_DIR / authority / f"{certificate_sha256(chain[0])}.pem"
    if not checked and not target.exists():
        target = target.with_name(target.name.removesuffix(".pem") + UNCHECKED_CHAIN_SUFFIX)
    if target.exists():
        return
    try:
        with atomic_path(target) as temp:
            temp.write_bytes(b"".join(certificate_pem(c) for c in chain))
    except FileExistsError:  # another process saved it first
        pass


def chain_end(chain: list[x509.Certificate]) -> str:
    """The last certificate of a chain: its subject and SHA-256, and its issuer's name
    when it is not a root (that certificate was not at hand)."""
    top = chain[-1]
    text = f"{top.subject.rfc4514_string()} (sha256 {certificate_sha256(top)})"
    if not is_self_issued(top):
        text += f", issued by {top.issuer.rfc4514_string()}"
    return text


def _shown(path: Path, archive: Path) -> str:
    """``path`` relative to the archive (both resolved), else as it is."""
    try:
        return str(path.resolve().relative_to(archive.resolve()))
    except (ValueError, OSError):
        return str(path)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A time-stamp request is not followed to another place (nor turned into a GET)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


# verifying -------------------------------------------------------------------------
@dataclass
class TokenCheck:
    """The verdict on one stored token."""

    authority: str
    file: str
    ok: bool
    time: datetime | None = None
    accuracy: float | None = None  # seconds, as the authority states it
    detail: str = ""
    problem: str | None = None
    sha256: str | None = None  # of the token file as read
    anchored: bool = False  # the chain ends at a root the verifier gave (--tsa-ca)
    root: str | None = None  # that root: subject and SHA-256
    # the signed custody event that logged the token on receipt marks it UNCHECKED
    unchecked_at_capture: bool = False
    chain_end: str | None = None  # the root reached, or as far as the chain goes

    def to_json(self) -> dict[str, Any]:
        return {
            "authority": self.authority,
            "file": self.file,
            "ok": self.ok,
            "time": isoformat(self.time) if self.time else None,
            "accuracy_seconds": self.accuracy,
            "root": self.root,
            "root_given": self.anchored,
            "chain_end": self.chain_end,
            "chain_unchecked_at_capture": self.unchecked_at_capture,
            "detail": self.detail,
            "problem": self.problem,
        }


def saved_certificates(archive: Path) -> list[x509.Certificate]:
    """Every certificate saved under ``tsa/`` with a chain checked to a trusted root on
    receipt (damaged files are skipped: a chain that needs one then fails, naming what
    is missing).  Chains saved unchecked (``*.unchecked.pem``) are not read: a
    self-signed certificate an authority sent is no root saved in the archive."""
    found: list[x509.Certificate] = []
    root = archive / TSA_DIR
    if not root.is_dir():
        return found
    for path in sorted(root.rglob("*.pem")):
        if path.name.endswith(UNCHECKED_CHAIN_SUFFIX):  # as a token carried it: no root
            continue
        try:
            found += read_certificates(path)
        except TimestampUsage:
            continue
    return found


def check_tokens(
    manifest: Path,
    signature: bytes,
    signed_at: datetime,
    archive: Path,
    given_roots: list[x509.Certificate] | None,
    *,
    now: datetime | None = None,
    saved: list[x509.Certificate] | None = None,
    unchecked: Collection[str] = (),
    listed: list[str] | None = None,
) -> list[TokenCheck]:
    """Check every token stored for ``manifest``'s signature, offline.

    The chain must reach ``given_roots`` (``--tsa-ca``) when given, else a root saved
    in the archive (which the report says: whoever could change the archive could
    also change those).  The token's time must fit :func:`time_problem`.
    ``saved``: the archive's saved certificates, when the caller has read them already.

    ``unchecked``: the token files (as shown, relative to the archive) whose signed
    custody event says they were kept :data:`UNCHECKED`.  Without ``given_roots``, such a
    token whose chain reaches no saved root holds when everything but the root does
    (:func:`rfc3161.check_token_unrooted`): the report says how far its chain goes, and no
    time is trusted.  With ``given_roots`` it is judged like any other token.
    ``listed``: the sorted names in the manifest's folder (see :func:`tokens_of`).
    """
    if saved is None:
        saved = saved_certificates(archive)
    roots = given_roots if given_roots else [c for c in saved if is_self_issued(c)]
    now = now or utcnow()
    checks = []
    for authority, path in tokens_of(manifest, listed):
        check = TokenCheck(authority, _shown(path, archive), False)
        check.unchecked_at_capture = check.file in unchecked
        checks.append(check)
        try:
            _check_token_file(check, path, signature, signed_at, roots, saved, now, given_roots)
        except Exception as exc:  # a planted file is a failed check, never a crash
            check.ok = False
            check.problem = f"the token cannot be checked ({exc!r})"
    return checks


def _check_token_file(
    check: TokenCheck,
    path: Path,
    signature: bytes,
    signed_at: datetime,
    roots: list[x509.Certificate],
    saved: list[x509.Certificate],
    now: datetime,
    given_roots: list[x509.Certificate] | None,
) -> None:
    rooted = True
    try:
        with path.open("rb") as handle:
            der = handle.read(RESPONSE_LIMIT + 1)
        check.sha256 = hashlib.sha256(der).hexdigest()
        try:
            info, chain = rfc3161.check_token(der, signature, roots, saved)
        except rfc3161.UntrustedChain:
            if given_roots or not check.unchecked_at_capture:
                raise
            info, chain = rfc3161.check_token_unrooted(der, signature, saved)
            rooted = False
    except OSError as exc:
        check.problem = f"the token cannot be read: {exc.strerror or exc}"
        return
    except rfc3161.UntrustedChain as exc:
        check.problem = f"{UNCHECKED}, and {exc}" if check.unchecked_at_capture else str(exc)
        return
    except rfc3161.TokenProblem as exc:
        check.problem = str(exc)
        return
    check.time = info.time
    check.accuracy = info.accuracy
    check.problem = time_problem(info, signed_at, now)
    if check.problem is not None:
        return
    ends = chain_end(chain)
    who = chain[0].subject.rfc4514_string()
    if not rooted:  # kept unchecked, and no root at hand: no trusted time, a note
        check.ok = True
        check.chain_end = ends
        check.detail = (
            f"RFC 3161 token by {who}, serial {info.serial}, {UNCHECKED}; its chain ends "
            f"at {ends}, not at a root saved in the archive (no --tsa-ca given)"
        )
        return
    root = f"{chain[-1].subject.rfc4514_string()} (sha256 {certificate_sha256(chain[-1])})"
    source = "a root given with --tsa-ca" if given_roots else "a root saved in the archive"
    check.ok = True
    check.chain_end = ends
    check.anchored = bool(given_roots)
    check.root = root
    check.detail = f"RFC 3161 token by {who}, serial {info.serial}, chain to {root} ({source})"


def time_problem(info: rfc3161.TokenInfo, signed_at: datetime, now: datetime) -> str | None:
    """Why a token's time cannot be that of a signature made at ``signed_at`` (by the
    capturing machine's clock), seen ``now``; None when it can.  It must not be before
    the signing (allowing :data:`CLOCK_TOLERANCE` for that clock, and the token's stated
    accuracy), nor after now (likewise).  Applied on receipt and by verify alike."""
    slack = CLOCK_TOLERANCE + timedelta(seconds=info.accuracy or 0)
    if info.time < signed_at - slack:
        return (
            f"the token's time {isoformat(info.time)} is before the manifest was signed "
            f"({isoformat(signed_at)} by the capturing machine's clock): the token is not "
            "for this signature, or that clock was wrong"
        )
    if info.time > now + slack:
        return f"the token's time {isoformat(info.time)} is in the future"
    return None


def trusted_time(checks: list[TokenCheck]) -> datetime | None:
    """The earliest time an authority whose root the verifier gave vouches the capture
    existed by: the token's time plus its stated accuracy.  None without such a token:
    a root saved in the archive is only as trustworthy as the archive."""
    times = [
        c.time + timedelta(seconds=c.accuracy or 0)
        for c in checks
        if c.ok and c.anchored and c.time is not None
    ]
    return min(times) if times else None


def check_head_tokens(
    archive: Path,
    events: dict[str, tuple[int, bytes, datetime]],
    given_roots: list[x509.Certificate] | None,
    *,
    saved: list[x509.Certificate] | None = None,
    logged: dict[str, str] | None = None,
    unchecked: Collection[str] = (),
    now: datetime | None = None,
) -> tuple[list[str], list[str]]:
    """Check the tokens over custody events (``custody/stamps/``) offline: problems and notes.

    ``events``: the log's events by the SHA-256 of their line: (seq, line, time).  A
    token whose event is no longer in the log is a problem (the tail was cut after
    it was stamped, or the log replaced), as is a token that does not hold like a
    capture's (:func:`check_tokens`), one changed since its signed ``timestamp`` event
    logged it, or one such an event logged that is gone (``logged``: file -> SHA-256)."""
    if saved is None:
        saved = saved_certificates(archive)
    roots = given_roots if given_roots else [c for c in saved if is_self_issued(c)]
    now = now or utcnow()
    problems: list[str] = []
    notes: list[str] = []
    folder = archive / "custody" / HEAD_STAMPS
    try:
        paths = sorted(p for p in folder.iterdir() if p.name.endswith(TOKEN_SUFFIX))
    except OSError:
        paths = []
    present = {_shown(p, archive) for p in paths}
    prefix = f"custody/{HEAD_STAMPS}/"
    for gone in sorted(p for p in (logged or {}) if p.startswith(prefix) and p not in present):
        problems.append(f"{gone}: a time-stamp of the custody log the log recorded is missing")
    last: int | None = None
    for path in paths:
        shown = _shown(path, archive)
        match = _HEAD_TOKEN.match(path.name)
        if match is None:
            problems.append(f"{shown}: not named as a token over a custody event")
            continue
        seq, digest, authority = int(match.group(1)), match.group(2), match.group(3)
        found = events.get(digest)
        if found is None or found[0] != seq:
            problems.append(
                f"{shown}: custody event {seq} (sha256 {digest[:16]}…) was time-stamped, and "
                "it is no longer in the log: events were removed from the log's end after "
                "that stamp, or the log was replaced"
            )
            continue
        check = TokenCheck(authority, shown, False)
        check.unchecked_at_capture = shown in unchecked
        try:
            _check_token_file(check, path, found[1], found[2], roots, saved, now, given_roots)
        except Exception as exc:  # a planted file is a failed check, never a crash
            check.problem = f"the token cannot be checked ({exc!r})"
        expected = (logged or {}).get(shown)
        if check.ok and expected is not None and check.sha256 != expected:
            check.ok = False
            check.problem = (
                f"the token file is not the one received (SHA-256 {check.sha256}, the custody "
                f"log recorded {expected}): changed in the archive"
            )
        if not check.ok or check.time is None:
            problems.append(f"{shown}: time-stamp of custody event {seq}: {check.problem}")
            continue
        source = "" if check.anchored else " (its chain to a root saved in the archive)"
        notes.append(
            f"custody event {seq} (sha256 {digest[:16]}…) time-stamped by {authority} at "
            f"{isoformat(check.time)}{source}: the log held it by then"
        )
        last = max(last or 0, seq)
    if last is None and not paths and events:  # the log alone cannot tell a tail cut
        seq, digest = max((s, d) for d, (s, _l, _t) in events.items())
        notes.append(
            f"the custody log's end is not time-stamped: events removed from its end (with "
            f"the captures they record) would leave no trace; its last event is {seq} "
            f"(sha256 {digest}): compare it with a hash kept elsewhere (`archiver verify "
            "--custody-head SHA256`), or anchor it with `archiver timestamp --custody --tsa URL`"
        )
    if last is not None:
        after = sum(1 for s, _l, _t in events.values() if s > last)
        if after:
            those = "event after it is" if after == 1 else f"{after} events after it are"
            notes.append(
                f"the log's last time-stamped event is {last}; the {those} not "
                "(`archiver timestamp --custody --tsa URL` anchors the end)"
            )
    return problems, notes


def timestamper(
    tsa: Sequence[str],
    tsa_ca: Sequence[Path],
    tsa_timeout: float = DEFAULT_TSA_TIMEOUT,
    *,
    mark_signed: bool = True,
) -> Timestamper | None:
    """A Timestamper asking each authority of ``tsa``; None when none is named.

    Tokens are checked against the roots in ``tsa_ca``, or else the machine's (public
    authorities chain to those).  With none named, a token whose chain reaches none of
    the machine's is kept marked unchecked, but only when ``mark_signed`` (the custody
    events of the stamps will be signed: verify believes the mark of a signed event only).
    """
    if not tsa:
        return None
    try:
        named = authorities(list(tsa))
        roots = [c for path in tsa_ca for c in read_certificates(Path(path))]
    except TimestampUsage as exc:
        raise UsageProblem(str(exc), hint="--tsa/--tsa-ca") from exc
    given = bool(roots)
    roots = roots or system_roots()
    refused = None
    if not given and not mark_signed:
        refused = (
            f'not kept marked "{UNCHECKED}": the custody event that would carry '
            "the mark cannot be signed (no usable key in the key store: an encrypted key "
            "needs ARCHIVER_KEY_PASSPHRASE), and verify believes a signed mark only"
        )
    return Timestamper(
        named,
        roots,
        timeout=tsa_timeout,
        keep_unchecked=not given and mark_signed,
        unchecked_refused=refused,
    )


def tsa_roots(tsa_ca: Sequence[Path]) -> list[x509.Certificate] | None:
    """The root certificates in the files named, or None when none is named."""
    try:
        return [c for path in tsa_ca for c in read_certificates(Path(path))] or None
    except TimestampUsage as exc:
        raise UsageProblem(str(exc), hint="--tsa-ca") from exc
