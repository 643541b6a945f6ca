"""POSTs to addresses people typed in (notification endpoints), safe against request forgery.

An endpoint's URL is someone's input, and the worker that calls it sits inside the network.
So: only http and https; the host is resolved once per request and every address it
resolves to is checked (link-local and cloud metadata addresses always refused, loopback
and private ranges unless allowed); the connection goes to the checked address, with the
URL's host name in `Host` and in TLS (SNI and certificate check), so a second resolution
cannot point it elsewhere (DNS rebinding); redirects are never followed; only the first
1 KB of an answer is read.
"""

import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import urllib3

# The most of an answer that is read and kept.
ANSWER_BYTES = 1024

# Cloud metadata services outside the link-local range (Alibaba, AWS over IPv6).
METADATA_ADDRESSES = {ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254")}


class Refused(Exception):
    """The URL or the address it resolves to may not be called."""


class SendFailed(Exception):
    """No answer: the connection failed or timed out."""


@dataclass(frozen=True)
class Answer:
    status: int
    # The first ANSWER_BYTES of the body.
    body: bytes
    latency_ms: int


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str


def parse(url: str) -> Target:
    """The URL's parts, or Refused when it is not a plain http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"Not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise Refused("Only http and https URLs are allowed.")
    if not parts.hostname:
        raise Refused("The URL has no host.")
    if parts.username or parts.password:
        raise Refused("Credentials in the URL are not allowed; use the endpoint's token.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path)


def refusal(address: str, allow_private: bool) -> str | None:
    """Why this address may not be called, or None when it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.is_link_local or ip in METADATA_ADDRESSES:
        return f"{ip} is a link-local or cloud metadata address."
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return f"{ip} is not a unicast address."
    if not ip.is_global and not allow_private:
        return f"{ip} is a loopback or private address (OFFLOAD_NOTIFY_ALLOW_PRIVATE is off)."
    return None


def resolve(target: Target, allow_private: bool) -> str:
    """Resolve the host once and check every address; answer the one to connect to."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise SendFailed(f"Cannot resolve {target.host}: {exc}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    for address in addresses:
        reason = refusal(address, allow_private)
        if reason:
            raise Refused(f"{target.host}: {reason}")
    if not addresses:
        raise SendFailed(f"{target.host} resolves to no address.")
    return addresses[0]


def tls_context(ca_file: str = "") -> ssl.SSLContext:
    """A client TLS context that checks the certificate and the host name: the system's CAs, and ca_file's too."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def check_url(url: str, allow_private: bool) -> None:
    """Refused when the URL could never be called: its scheme, or an address written in it.

    Host names are not resolved here (no DNS lookup while a request waits); every attempt
    resolves and checks them.
    """
    target = parse(url)
    host = target.host.lower()
    if host == "localhost" or host.endswith(".localhost"):
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return
    reason = refusal(host, allow_private)
    if reason:
        raise Refused(reason)


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float, allow_private: bool) -> Answer:
    """POST body to url, safely; answer the status and the first 1 KB. Refused or SendFailed otherwise."""
    target = parse(url)
    started = time.monotonic()
    address = resolve(target, allow_private)
    limit = urllib3.Timeout(total=timeout)
    if target.scheme == "https":
        pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
            address,
            target.port,
            timeout=limit,
            retries=False,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, target.port, timeout=limit, retries=False)
    default_port = 443 if target.scheme == "https" else 80
    host = target.host if ":" not in target.host else f"[{target.host}]"
    sent = {"Host": host if target.port == default_port else f"{host}:{target.port}", **headers}
    try:
        response = pool.urlopen(
            "POST", target.path, body=body, headers=sent, redirect=False, retries=False, preload_content=False
        )
        try:
            head = response.read(ANSWER_BYTES)
        finally:
            response.release_conn()
    except urllib3.exceptions.HTTPError as exc:
        raise SendFailed(f"{type(exc).__name__}: {exc}") from None
    finally:
        pool.close()
    return Answer(response.status, head, int((time.monotonic() - started) * 1000))
