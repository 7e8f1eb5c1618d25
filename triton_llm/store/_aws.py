"""Where the S3 client's endpoint, region, credentials, TLS trust and proxy come from.

The standard AWS sources, read when a store is opened (never at import):

- endpoint: ``Settings.s3_endpoint_url``, else ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL``
  (both ignored when ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true``), else AWS itself;
- region: ``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's ``region`` in the AWS config
  file, else ``us-east-1`` (AWS answers a wrong region with the bucket's, which is then used);
- credentials: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (+ ``AWS_SESSION_TOKEN``) from the
  environment, which is the first link of the standard chain; otherwise botocore's credential
  chain (profiles, SSO, web identity / IRSA, container and instance roles), imported only then,
  which also refreshes temporary credentials;
- TLS trust: ``AWS_CA_BUNDLE``, else certifi's bundle (as botocore), else the system's;
- proxy: ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``, as urllib reads them.
"""

from __future__ import annotations

import configparser
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from triton_llm.errors import ConfigError, StoreError
from triton_llm.store._http import Proxy
from triton_llm.store._sigv4 import Credentials

DEFAULT_REGION = "us-east-1"
_NO_CREDENTIALS_HINT = "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an instance role"


def endpoint_url(explicit: str | None, environ: Mapping[str, str]) -> str | None:
    """The configured S3-compatible endpoint, or ``None`` for AWS itself."""
    if explicit:
        return explicit
    if environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return None
    return environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL") or None


def parse_endpoint(url: str) -> tuple[str, str, int, str]:
    """``(scheme, host, port, base_path)`` of an endpoint URL.

    Raises:
        ConfigError: not an ``http(s)://host[:port]`` URL.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"S3 endpoint {url!r} is not an http(s) URL",
            field="s3_endpoint_url",
            value=url,
            hint="use e.g. http://127.0.0.1:9000 or https://s3.example.com",
        )
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname, port, parts.path.rstrip("/")


def _profile_config(environ: Mapping[str, str]) -> Mapping[str, str]:
    path = Path(environ.get("AWS_CONFIG_FILE") or Path.home() / ".aws" / "config").expanduser()
    profile = environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE") or "default"
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path)
    except (OSError, configparser.Error):
        return {}
    section = "default" if profile == "default" else f"profile {profile}"
    return parser[section] if parser.has_section(section) else {}


def region(environ: Mapping[str, str]) -> str:
    """The signing region (see the module docstring for the order)."""
    return (
        environ.get("AWS_REGION")
        or environ.get("AWS_DEFAULT_REGION")
        or _profile_config(environ).get("region")
        or DEFAULT_REGION
    )


def ssl_context(environ: Mapping[str, str]) -> ssl.SSLContext:
    """A verifying TLS context trusting ``AWS_CA_BUNDLE``, certifi's bundle or the system's CAs."""
    cafile = environ.get("AWS_CA_BUNDLE")
    if not cafile:
        try:
            import certifi

            cafile = certifi.where()
        except ImportError:
            cafile = None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(
            f"cannot load the CA bundle {cafile}: {e}", path=cafile, hint="check AWS_CA_BUNDLE"
        ) from e


def proxy_for(scheme: str, host: str, environ: Mapping[str, str]) -> Proxy | None:
    """The proxy to reach ``scheme://host``, from ``<scheme>_proxy`` and ``no_proxy`` (any case)."""
    proxies: dict[str, str] = {}
    for name, value in environ.items():  # lower-case names win, as in urllib
        lowered = name.lower()
        if lowered.endswith("_proxy") and value and (name == lowered or lowered[:-6] not in proxies):
            proxies[lowered[:-6]] = value
    url = proxies.get(scheme)
    if not url:
        return None
    import urllib.request

    # proxy_bypass_environment is public in CPython's urllib.request but missing from typeshed
    if urllib.request.proxy_bypass_environment(host, proxies):  # type: ignore[attr-defined]
        return None
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigError(
            f"unsupported proxy {url!r} for {scheme}", value=url, hint="use an http:// proxy URL"
        )
    return Proxy(parts.hostname, parts.port or 80)


def credential_source(environ: Mapping[str, str]) -> Callable[[], Credentials]:
    """A function returning current credentials (cheap to call per request).

    Raises (when called):
        StoreError: no usable credentials in the chain.
    """
    key, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret and not environ.get("AWS_CREDENTIAL_EXPIRATION"):
        token = environ.get("AWS_SECURITY_TOKEN") or environ.get("AWS_SESSION_TOKEN") or None
        static = Credentials(key, secret, token)
        return lambda: static
    return _BotocoreChain()


class _BotocoreChain:
    """botocore's credential chain, resolved on first use; refreshing credentials refresh themselves."""

    def __init__(self) -> None:
        self._resolved: Any = None  # botocore Credentials, loaded on first use

    def __call__(self) -> Credentials:
        from botocore.exceptions import BotoCoreError

        try:
            if self._resolved is None:
                import botocore.session

                self._resolved = botocore.session.get_session().get_credentials()
            if self._resolved is None:
                raise StoreError("no usable AWS credentials", hint=_NO_CREDENTIALS_HINT)
            frozen = self._resolved.get_frozen_credentials()
        except BotoCoreError as e:
            raise StoreError(f"no usable AWS credentials: {e}", hint=_NO_CREDENTIALS_HINT) from e
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token or None)
