"""subjects.ports.ConnectorTransportPort: a connector's signed POST, under the webhooks' URL rules (the address is
resolved and checked at sending time, https only, loopback only when allowed) and signed as a webhook is."""

from __future__ import annotations

from datetime import UTC, datetime

import urllib3
from standardwebhooks.webhooks import Webhook

from config.errors import DomainError
from consent.webhooks.delivery import CONNECT_TIMEOUT, USER_AGENT
from consent.webhooks.urls import url_resolve
from subjects.ports import SystemAnswer

READ_TIMEOUT = 60.0  # a system gathering a person's data may take a while before it answers
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # a system's export of one person


class ConnectorTransportImpl:
    def post(self, *, url: str, secret: str, msg_id: str, body: bytes, timeout: float | None = None) -> SystemAnswer:
        try:
            target = url_resolve(url)
        except DomainError as exc:
            return SystemAnswer(None, b"", f"refused: {exc.detail}"[:300])
        sent_at = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "host": target.host if target.port in (80, 443) else f"{target.host}:{target.port}",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, sent_at, body.decode()),
        }
        limits = urllib3.Timeout(connect=CONNECT_TIMEOUT, read=timeout or READ_TIMEOUT)
        pool: urllib3.HTTPConnectionPool
        if target.scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                target.address,
                target.port,
                timeout=limits,
                server_hostname=target.host,
                assert_hostname=target.host,
                cert_reqs="CERT_REQUIRED",
            )
        else:
            pool = urllib3.HTTPConnectionPool(target.address, target.port, timeout=limits)
        try:
            response = pool.urlopen(
                "POST", target.path, body=body, headers=headers, retries=False, redirect=False, preload_content=False
            )
            answer = response.read(MAX_ANSWER_BYTES + 1)
            response.release_conn()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            return SystemAnswer(None, b"", type(exc).__name__)
        finally:
            pool.close()
        if len(answer) > MAX_ANSWER_BYTES:
            return SystemAnswer(response.status, b"", f"answer larger than {MAX_ANSWER_BYTES} bytes")
        return SystemAnswer(response.status, answer)
