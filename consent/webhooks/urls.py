"""Where a webhook may go (API.md, Webhooks): https to a public address; http, and loopback, only with
ASSENT_WEBHOOK_ALLOW_LOOPBACK=1 (tests, local development); private, link-local and every other non-public address
refused. The host is resolved when the subscription is made and again at every delivery, and the delivery connects
to the address it checked, so a name that later resolves inward (DNS rebinding) is refused rather than followed."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from config.errors import InvalidInputError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 2000


class WebhookUrlError(InvalidInputError):
    code = "webhook_url_refused"
    title = "Webhook URL refused"


@dataclass(frozen=True, slots=True)
class Target:
    """A checked endpoint: connect to `address`, name `host` in the Host header and TLS."""

    scheme: str
    host: str
    port: int
    address: str
    path: str  # path and query


def _allowed(address: Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    address = mapped or address
    if address.is_loopback:
        return settings.ASSENT_WEBHOOK_ALLOW_LOOPBACK
    return address.is_global and not address.is_multicast


def url_parse(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of a URL that may name a webhook, before any resolution."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise WebhookUrlError(f"must be an https URL of at most {MAX_URL_LENGTH} characters", field="url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise WebhookUrlError("is not a valid URL", field="url") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise WebhookUrlError("must be an https URL", field="url")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlError("must not hold credentials (the signature authenticates Assent)", field="url")
    if parts.fragment:
        raise WebhookUrlError("must not have a fragment", field="url")
    host = (parts.hostname or "").rstrip(".")
    if not host or any(c.isspace() for c in url):
        raise WebhookUrlError("names no host", field="url")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, host, port or (443 if scheme == "https" else 80), path


def url_resolve(url: str) -> Target:
    """The endpoint a URL names, checked: every address its host resolves to must be allowed (one inward address is
    enough to refuse: a resolver may hand out either). InvalidInputError (a 400 at subscription, a failed attempt at
    delivery) otherwise."""
    scheme, host, port, path = url_parse(url)
    try:
        literal: Address | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses: list[Address] = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise WebhookUrlError("its host does not resolve", field="url") from None
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
        if not addresses:
            raise WebhookUrlError("its host does not resolve", field="url")
    refused = [a for a in addresses if not _allowed(a)]
    if refused:
        raise WebhookUrlError("resolves to a private, link-local or otherwise non-public address", field="url")
    loopback = all((getattr(a, "ipv4_mapped", None) or a).is_loopback for a in addresses)
    if scheme == "http" and not loopback:
        raise WebhookUrlError("must be an https URL (http only for loopback in development)", field="url")
    return Target(scheme=scheme, host=host.strip("[]"), port=port, address=str(addresses[0]), path=path)
