"""SigV4 signing against AWS's published example, and the URI encoding rules it depends on."""

from __future__ import annotations

from datetime import datetime, timezone

from triton_llm.store._sigv4 import EMPTY_SHA256, Credentials, canonical_query, sign, uri_encode

# "Example: GET Object" in https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
AWS_EXAMPLE = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


def test_signature_matches_the_aws_documented_example() -> None:
    headers = sign(
        "GET",
        "/test.txt",
        "",
        {"host": "examplebucket.s3.amazonaws.com", "range": "bytes=0-9"},
        credentials=AWS_EXAMPLE,
        region="us-east-1",
        now=datetime(2013, 5, 24, tzinfo=timezone.utc),
        payload_sha256=EMPTY_SHA256,
    )
    assert headers["x-amz-date"] == "20130524T000000Z"
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_a_session_token_is_sent_and_signed() -> None:
    creds = Credentials("AKID", "hush-hush", token="tok3n")
    headers = sign(
        "GET", "/", "", {"host": "h"}, credentials=creds, region="eu-west-1", now=datetime.now(timezone.utc)
    )
    assert headers["x-amz-security-token"] == "tok3n"
    assert "x-amz-security-token" in headers["authorization"].split("SignedHeaders=")[1]
    assert "hush-hush" not in repr(creds) and "tok3n" not in repr(creds)


def test_uri_encoding_and_query_order() -> None:
    assert uri_encode("/b/a key+x=y~z/é", keep_slash=True) == "/b/a%20key%2Bx%3Dy~z/%C3%A9"
    assert uri_encode("a/b", keep_slash=False) == "a%2Fb"
    assert (
        canonical_query({"uploads": "", "prefix": "p/q", "list-type": "2"})
        == "list-type=2&prefix=p%2Fq&uploads="
    )
