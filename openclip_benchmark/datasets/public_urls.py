"""Image URLs from a user's table reach public addresses only: never the cloud's metadata service (169.254.169.254
answers with the instance's credentials), the node itself or the private network it sits in.

img2dataset fetches with urllib's global opener in processes it spawns, and follows redirects itself. So its
downloader is wrapped (`public_addresses_only`): each process installs `public_opener` before it fetches, whose
connections resolve the host once, refuse it unless every address it resolves to is public, and connect to the very
address that was checked. Every redirect opens a new connection through the same check, and a DNS answer that
changes between check and connect (rebinding) is never asked for. Environment proxies are not used, since a proxy
would resolve the host itself.
"""

from __future__ import annotations

import http.client
import importlib
import ipaddress
import socket
import urllib.request
from contextlib import contextmanager

REASON = "non-public address"  # the per-row status reason
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class NonPublicAddress(OSError):
    """The host resolves to an address that is not public; nothing was sent."""


def address_kind(address: str) -> str | None:
    """None for a public (globally routable) address, else what it is: loopback, link-local, private..."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6:  # an IPv4 address inside an IPv6 one reaches that IPv4 address
        embedded = ip.ipv4_mapped or ip.sixtofour or (
            ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if embedded is not None and (kind := address_kind(str(embedded))):
            return kind
    for kind in ("loopback", "link_local", "unspecified", "multicast", "reserved", "private"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if ip.is_global else "non-global"


def connect_public(address: tuple[str, int], timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None):
    """`socket.create_connection` for public hosts only: every address the host resolves to is checked first, then
    the checked addresses are connected to as literals (no second lookup)."""
    host, port = address
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for *_, sockaddr in infos:
        if kind := address_kind(sockaddr[0]):
            raise NonPublicAddress(f"{REASON}: {host} resolves to {sockaddr[0]} ({kind}); refused "
                                   "(--allow-private-urls fetches it)")
    error: OSError = OSError(f"{host} resolves to no address")
    for *_, sockaddr in infos:
        try:
            return socket.create_connection((sockaddr[0], port), timeout, source_address)
        except OSError as exc:
            error = exc
    raise error


class _PublicHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = connect_public


class _PublicHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = connect_public  # TLS still verifies the certificate against the host name


class _PublicHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(_PublicHTTPConnection, req)


class _PublicHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(_PublicHTTPSConnection, req, context=self._context)


def public_opener() -> urllib.request.OpenerDirector:
    """urllib's opener (redirects included) whose every connection goes to a public address, without proxies."""
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _PublicHTTPHandler, _PublicHTTPSHandler)


class PublicOnly:
    """img2dataset's downloader, run in its process after `public_opener` is installed there (pickled to it)."""

    def __init__(self, downloader):
        self.downloader = downloader

    def __call__(self, row):
        urllib.request.install_opener(public_opener())
        return self.downloader(row)


@contextmanager
def public_addresses_only():
    """Within: every `img2dataset.download` fetches through `public_opener` in its worker processes."""
    img2dataset_main = importlib.import_module("img2dataset.main")  # `img2dataset.main` is also its function
    original = img2dataset_main.Downloader
    img2dataset_main.Downloader = lambda *args, **kwargs: PublicOnly(original(*args, **kwargs))
    try:
        yield
    finally:
        img2dataset_main.Downloader = original
