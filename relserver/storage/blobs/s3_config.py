"""What names an S3 blob store: the `s3://bucket/prefix` URL and the AWS_* settings. Needs no
S3 client, so the command line can check a URL and the banner describe a store without one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from obstore.store import ClientConfig, S3Config

# The data path: a request (a window's GET included) may take this long before it fails.
REQUEST_TIMEOUT = timedelta(minutes=5)
CONNECT_TIMEOUT = timedelta(seconds=10)
AWS_DEFAULT_ENDPOINT = "AWS S3"


@dataclass(frozen=True, slots=True)
class S3Settings:
    """Where the bucket is and who we are; None leaves a value to obstore's own defaults
    (and its own reading of the environment)."""

    endpoint: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> S3Settings:
        """The standard variables: AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, AWS_REGION (or
        AWS_DEFAULT_REGION), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN."""

        def get(*names: str) -> str | None:
            for name in names:
                if environ.get(name):
                    return environ[name]
            return None

        return cls(
            endpoint=get("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
            region=get("AWS_REGION", "AWS_DEFAULT_REGION"),
            access_key_id=get("AWS_ACCESS_KEY_ID"),
            secret_access_key=get("AWS_SECRET_ACCESS_KEY"),
            session_token=get("AWS_SESSION_TOKEN"),
        )

    def config(self) -> S3Config:
        config: S3Config = {}
        if self.endpoint:
            config["endpoint"] = self.endpoint
        if self.region:
            config["region"] = self.region
        if self.access_key_id:
            config["access_key_id"] = self.access_key_id
        if self.secret_access_key:
            config["secret_access_key"] = self.secret_access_key
        if self.session_token:
            config["session_token"] = self.session_token
        return config

    def client_options(self) -> ClientConfig:
        # obstore refuses plain http unless told; a local or in-cluster endpoint often is.
        http = bool(self.endpoint and self.endpoint.lower().startswith("http://"))
        return {"allow_http": http, "timeout": REQUEST_TIMEOUT, "connect_timeout": CONNECT_TIMEOUT}


@dataclass(frozen=True, slots=True)
class BlobUrl:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> BlobUrl:
        """`s3://bucket` or `s3://bucket/some/prefix`; ValueError naming what is wrong."""
        parts = urlsplit(url)
        if parts.scheme != "s3":
            raise ValueError(f"not an s3:// URL: {url!r}")
        if not parts.netloc or "@" in parts.netloc or ":" in parts.netloc:
            raise ValueError(f"an s3:// URL names a bucket and nothing else before the path: {url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"an s3:// URL takes no query or fragment: {url!r}")
        return cls(bucket=parts.netloc, prefix=parts.path.strip("/"))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def describe(url: str, settings: S3Settings) -> str:
    """For the banner and logs: bucket, prefix and endpoint, never a credential (not even one
    written into the endpoint URL)."""
    endpoint = AWS_DEFAULT_ENDPOINT
    if settings.endpoint:
        parts = urlsplit(settings.endpoint)
        endpoint = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    return f"S3, {BlobUrl.parse(url)} at {endpoint}"
