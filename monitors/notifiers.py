"""Where alerts go: the log, a JSON webhook (optionally HMAC-signed), a Slack-compatible webhook."""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import logging
import time
from typing import TYPE_CHECKING, ClassVar

import orjson

from gateway.orm import Asset
from monitors.config import NotifierConfig
from monitors.messages import AlertMessage

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger("gateway.alerts")
SIGNATURE_HEADER = "X-Asset-Gateway-Signature"
TIMESTAMP_HEADER = "X-Asset-Gateway-Timestamp"
_SEVERITY_RANK = {"warn": 0, "error": 1}


class Notifier:
    """One configured destination. `send` raises when the destination did not accept the message."""

    kind: ClassVar[str] = ""

    def __init__(self, config: NotifierConfig) -> None:
        self.config = config
        self.name = config.name

    def wants(self, asset: Asset, severity: str) -> bool:
        route = self.config.route
        if _SEVERITY_RANK[severity] < _SEVERITY_RANK[route.min_severity]:
            return False
        if route.namespace_prefix and not asset.namespace.startswith(route.namespace_prefix):
            return False
        if route.type and asset.type != route.type:
            return False
        if route.tag and route.tag not in asset.tags:
            return False
        if route.owner and route.owner not in asset.owners:
            return False
        return not (route.key_glob and not fnmatch.fnmatchcase(asset.key, route.key_glob))

    async def send(self, message: AlertMessage) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


class LogNotifier(Notifier):
    kind = "log"

    async def send(self, message: AlertMessage) -> None:
        level = logging.ERROR if message.severity == "error" and message.event == "opened" else logging.WARNING
        logger.log(level, "%s", message.text, extra={"alert": message.as_json()})


class _HttpNotifier(Notifier):
    def __init__(self, config: NotifierConfig) -> None:
        super().__init__(config)
        # Imported here: a gateway that only logs its alerts leaves the HTTP client unloaded (3 to 7 MB).
        import httpx

        self.client: httpx.AsyncClient = httpx.AsyncClient(timeout=config.timeout_seconds, headers=config.headers)

    def body(self, message: AlertMessage) -> bytes:
        raise NotImplementedError

    def signed_headers(self, body: bytes) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if self.config.secret:
            timestamp = str(int(time.time()))
            digest = hmac.new(self.config.secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = f"sha256={digest.hexdigest()}"
        return headers

    async def send(self, message: AlertMessage) -> None:
        assert self.config.url is not None
        body = self.body(message)
        response = await self.client.post(self.config.url, content=body, headers=self.signed_headers(body))
        if response.status_code >= 300:
            raise RuntimeError(f"{self.config.url} answered {response.status_code}: {response.text[:200]}")

    async def aclose(self) -> None:
        await self.client.aclose()


class WebhookNotifier(_HttpNotifier):
    kind = "webhook"

    def body(self, message: AlertMessage) -> bytes:
        return orjson.dumps(message.as_json())


class SlackNotifier(_HttpNotifier):
    """Slack incoming webhooks (and the many services that accept their format)."""

    kind = "slack"

    def body(self, message: AlertMessage) -> bytes:
        return orjson.dumps({"text": message.text})


NOTIFIER_KINDS: dict[str, type[Notifier]] = {
    notifier.kind: notifier for notifier in (LogNotifier, WebhookNotifier, SlackNotifier)
}


def build_notifiers(configs: list[NotifierConfig]) -> dict[str, Notifier]:
    return {config.name: NOTIFIER_KINDS[config.kind](config) for config in configs}
