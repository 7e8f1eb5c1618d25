"""AWS Signature Version 4 for S3 requests: pure functions, no I/O.

The algorithm is AWS's published one
(https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html): a canonical
request (method, URI-encoded path, sorted query, signed headers, payload hash) is hashed into a
string to sign, which an HMAC chain keyed by the secret, date, region and service signs. File
bodies are sent as ``UNSIGNED-PAYLOAD``: every restored byte is checked against the manifest's
sha256 instead.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True)
class Credentials:
    """One set of AWS credentials (``token`` for temporary ones)."""

    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:  # never print secrets
        token = "***" if self.token else None
        return f"Credentials(access_key={self.access_key!r}, secret_key=***, token={token})"


def uri_encode(value: str, *, keep_slash: bool) -> str:
    """S3's URI encoding: everything but ``A-Za-z0-9-._~`` (and ``/`` in paths) is %-encoded."""
    return quote(value, safe="/~" if keep_slash else "~")


def canonical_query(params: dict[str, str]) -> str:
    """The sorted, encoded query string (also what is sent, so both always agree)."""
    pairs = sorted(
        (uri_encode(k, keep_slash=False), uri_encode(v, keep_slash=False)) for k, v in params.items()
    )
    return "&".join(f"{k}={v}" for k, v in pairs)


@functools.lru_cache(maxsize=16)
def _signing_key(secret_key: str, day: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    *,
    credentials: Credentials,
    region: str,
    now: datetime,
    payload_sha256: str = UNSIGNED_PAYLOAD,
    service: str = "s3",
) -> dict[str, str]:
    """``headers`` plus the SigV4 ones: ``x-amz-date``, ``x-amz-content-sha256``, token, ``authorization``.

    Args:
        method: HTTP method.
        path: the encoded request path, e.g. ``/bucket/some%20key`` (see :func:`uri_encode`).
        query: the encoded query string (see :func:`canonical_query`).
        headers: lower-case header names to send and sign; must include ``host``.
        credentials: the signing credentials.
        region: signing region.
        now: the request time (UTC).
        payload_sha256: hex sha256 of the body, or ``UNSIGNED-PAYLOAD``.
        service: signing service name.
    """
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    out = dict(headers)
    out["x-amz-date"] = amz_date
    out["x-amz-content-sha256"] = payload_sha256
    if credentials.token:
        out["x-amz-security-token"] = credentials.token
    names = sorted(out)
    canonical_headers = "".join(f"{n}:{' '.join(str(out[n]).split())}\n" for n in names)
    signed_headers = ";".join(names)
    canonical_request = "\n".join([method, path, query, canonical_headers, signed_headers, payload_sha256])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = _signing_key(credentials.secret_key, day, region, service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return out
