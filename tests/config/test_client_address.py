"""The client's address behind a reverse proxy (config/net.py): X-Forwarded-For only from a trusted peer."""

from __future__ import annotations

from typing import Any

from django.test import RequestFactory

from config.net import client_address


def request(remote: str, forwarded: str | None = None) -> Any:
    extra: dict[str, Any] = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


def test_without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says(settings: Any) -> None:
    settings.ASSENT_TRUSTED_PROXIES = []
    assert client_address(request("203.0.113.7", "198.51.100.1")) == "203.0.113.7"


def test_behind_a_trusted_proxy_each_person_is_their_own_address(settings: Any) -> None:
    settings.ASSENT_TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert client_address(request("10.0.0.2", "198.51.100.1")) == "198.51.100.1"
    assert client_address(request("10.0.0.2", "198.51.100.2")) == "198.51.100.2"


def test_an_untrusted_peer_cannot_choose_its_address_by_a_header(settings: Any) -> None:
    settings.ASSENT_TRUSTED_PROXIES = ["10.0.0.2"]
    assert client_address(request("203.0.113.9", "198.51.100.1")) == "203.0.113.9"


def test_the_chain_is_read_from_the_right_so_a_forged_left_entry_is_ignored(settings: Any) -> None:
    settings.ASSENT_TRUSTED_PROXIES = ["10.0.0.0/8", "192.0.2.10"]
    # The client wrote "1.2.3.4" itself; its real address is what our first proxy (192.0.2.10) appended.
    chain = "1.2.3.4, 198.51.100.5, 192.0.2.10"
    assert client_address(request("10.0.0.2", chain)) == "198.51.100.5"


def test_garbage_in_the_chain_or_the_setting_is_ignored(settings: Any) -> None:
    settings.ASSENT_TRUSTED_PROXIES = ["not-a-network", "10.0.0.2", ""]
    assert client_address(request("10.0.0.2", "nonsense")) == "10.0.0.2"
    assert client_address(request("10.0.0.2", "")) == "10.0.0.2"
    assert client_address(request("10.0.0.2", " 2001:db8::1 ")) == "2001:db8::1"
    assert client_address(request("10.0.0.2", "198.51.100.5:4711")) == "198.51.100.5"
