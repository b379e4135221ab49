"""subjects.ports.ConnectorTransportPort: a connector's signed POST, under the webhooks' URL rules (the address is
resolved and checked at sending time, https only, loopback only when allowed) and signed as a webhook is."""

from __future__ import annotations

import urllib3
from standardwebhooks.webhooks import Webhook

from config.errors import DomainError
from consent.webhooks.delivery import signed_headers, target_pool
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
        headers = signed_headers(target, msg_id, body.decode(), Webhook(secret))
        pool = target_pool(target, read_timeout=timeout or READ_TIMEOUT)
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
