"""The client's address, as every rate limit, lockout and piece of evidence should see it.

Behind a reverse proxy REMOTE_ADDR is the proxy, so every person would share one bucket. X-Forwarded-For is read
only when the direct peer is one of ASSENT_TRUSTED_PROXIES (IPs or CIDRs): anyone else can write that header, so
from an untrusted peer it is ignored. The chain is walked from the right (the entry the nearest proxy appended),
skipping trusted proxies; the first address that is not one is the client. Entries that are not addresses stop
the walk (a proxy we trust never writes one), and the last trusted hop is the answer then.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue  # documented: an invalid entry is ignored, not a start-up error
    return tuple(networks)


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # [v6]:port
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # v4:port
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: Iterable[Network]) -> bool:
    return any(address.version == network.version and address in network for network in networks)


def client_address(request: HttpRequest) -> str:
    """The client's IP address as a string ("" when the peer gave none)."""
    peer = _address(str(request.META.get("REMOTE_ADDR", "") or ""))
    if peer is None:
        return ""
    networks = _networks(tuple(settings.ASSENT_TRUSTED_PROXIES))
    if not networks or not _trusted(peer, networks):
        return str(peer)
    client = peer
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR", "") or "")
    for entry in reversed(forwarded.split(",")):
        hop = _address(entry)
        if hop is None:
            break
        client = hop
        if not _trusted(hop, networks):
            break
    return str(client)


def request_evidence(request: HttpRequest, form: str) -> dict[str, str]:
    """What proves the person's own act, without more personal data than needed: the IP is truncated."""
    ip = client_address(request)
    if ":" in ip:
        truncated = ":".join(ip.split(":")[:3]) + "::"
    else:
        truncated = ".".join([*ip.split(".")[:3], "0"]) if ip.count(".") == 3 else ""
    return {"form": form, "ip": truncated, "user_agent": request.META.get("HTTP_USER_AGENT", "")[:300]}
