"""Sending one alert through one channel: a webhook (JSON, HMAC-signed, or a
Slack-compatible payload) or e-mail over SMTP.

A webhook gets ``POST`` with ``Content-Type: application/json``; when the channel names
``secret_env``, the body is signed with the key in that variable::

    X-Ladis-Timestamp: 1795539600
    X-Ladis-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." + body>

so a receiver checks the signature and refuses old timestamps (replays). Any 2xx answer
is a delivery; anything else raises :class:`AlertDeliveryError`. Error messages name the
channel, never its URL or credentials (a Slack webhook URL is itself a secret).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import smtplib
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from ladis_core.config import redact
from ladis_core.errors import AlertDeliveryError
from ladis_core.fleet.config import AlertChannel

SIGNATURE_HEADER = "X-Ladis-Signature"
TIMESTAMP_HEADER = "X-Ladis-Timestamp"


@dataclass(frozen=True)
class Alert:
    """What an alert says: ``kind`` is ``incident`` (the endpoint turned into an
    incident) or ``resolved`` (it turned quiet again)."""

    kind: str
    endpoint: str
    job_id: str
    scheduled_at: str
    detection_rate: float | None
    baseline_detection_rate: float | None
    alert_threshold: float | None
    requests: int
    results: str
    #: the window test's p-value (None: a result written before the window test)
    window_p_value: float | None = None
    #: the estimated share of requests that look crafted: {estimate, low, high, level}
    crafted_share: dict[str, float] | None = None
    #: what decided the incident (``IncidentRule.describe()``)
    rule: str = ""

    @property
    def summary(self) -> str:
        rate = "n/a" if self.detection_rate is None else f"{self.detection_rate:.0f}%"
        base = (
            "n/a"
            if self.baseline_detection_rate is None
            else f"{self.baseline_detection_rate:.0f}%"
        )
        if self.kind == "incident":
            head = f"LADIS: incident on endpoint {self.endpoint}"
        else:
            head = f"LADIS: endpoint {self.endpoint} is quiet again"
        parts = []
        if self.window_p_value is not None:
            parts.append(f"window test p = {self.window_p_value:.2g}")
        if self.crafted_share is not None:
            low, high = (round(100 * self.crafted_share[k]) for k in ("low", "high"))
            parts.append(f"{low}–{high} % of requests look crafted")
        parts.append(f"detection rate {rate}, baseline {base}, {self.requests} requests")
        if self.rule:
            parts.append(f"rule: {self.rule}")
        return f"{head} (job {self.job_id}): " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "ladis.alert", **self.__dict__, "summary": self.summary}


def payload(alert: Alert, fmt: str) -> bytes:
    """The webhook body: LADIS's JSON, or Slack's ``{"text", "blocks"}``."""
    if fmt == "slack":
        emoji = ":rotating_light:" if alert.kind == "incident" else ":white_check_mark:"
        body: dict[str, Any] = {
            "text": alert.summary,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": f"{emoji} {alert.summary}"}},
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": f"results: {alert.results}"}],
                },
            ],
        }
    else:
        body = alert.to_dict()
    return json.dumps(body, sort_keys=True, allow_nan=False).encode()


def sign(body: bytes, key: bytes, timestamp: int) -> str:
    """The signature header value of ``body`` sent at ``timestamp``."""
    digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def send(alert: Alert, channel: AlertChannel) -> str:
    """Deliver once (no retry; see :mod:`ladis_core.fleet.alerts`); returns a short
    description of the answer, raises :class:`AlertDeliveryError`."""
    if channel.type == "webhook":
        return _webhook(alert, channel)
    return _smtp(alert, channel)


def _secret(channel: AlertChannel, variable: str, what: str) -> str | None:
    if not variable:
        return None
    value = os.environ.get(variable)
    if not value:
        raise AlertDeliveryError(
            f"alert channel {channel.name!r}: the environment variable {variable} holding its "
            f"{what} is not set"
        )
    return value


def _webhook(alert: Alert, channel: AlertChannel) -> str:
    body = payload(alert, channel.format)
    headers = {"Content-Type": "application/json", "User-Agent": "LADIS-alerts"}
    key = _secret(channel, channel.secret_env, "HMAC key")
    if key is not None:
        stamp = int(time.time())
        headers[TIMESTAMP_HEADER] = str(stamp)
        headers[SIGNATURE_HEADER] = sign(body, key.encode(), stamp)
    request = urllib.request.Request(channel.url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=channel.timeout_s) as answer:  # noqa: S310
            return f"HTTP {answer.status}"
    except urllib.error.HTTPError as exc:
        raise AlertDeliveryError(
            f"webhook {channel.name!r} answered HTTP {exc.code} {exc.reason}"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AlertDeliveryError(
            f"cannot reach webhook {channel.name!r}: {_clean(reason, channel)}"
        ) from None


def _smtp(alert: Alert, channel: AlertChannel) -> str:
    message = EmailMessage()
    message["Subject"] = alert.summary.split(" (job")[0]
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.to)
    message.set_content(
        f"{alert.summary}\n\nscheduled at: {alert.scheduled_at}\nthreshold: "
        f"{alert.alert_threshold}\nresults: {alert.results}\n"
    )
    user = _secret(channel, channel.username_env, "user name")
    password = _secret(channel, channel.password_env, "password")
    try:
        with smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout_s) as smtp:
            if channel.starttls:
                smtp.starttls()
            if user is not None:
                smtp.login(user, password or "")
            refused = smtp.send_message(message)
    except smtplib.SMTPException as exc:
        raise AlertDeliveryError(
            f"SMTP server of channel {channel.name!r} refused the alert: {_clean(exc, channel)}"
        ) from None
    except OSError as exc:
        raise AlertDeliveryError(
            f"cannot reach the SMTP server of channel {channel.name!r} "
            f"({channel.host}:{channel.port}): {_clean(exc, channel)}"
        ) from None
    if refused:
        raise AlertDeliveryError(
            f"SMTP server of channel {channel.name!r} refused {len(refused)} recipient(s)"
        )
    return f"SMTP accepted for {len(channel.to)} recipient(s)"


def _clean(reason: Any, channel: AlertChannel) -> str:
    """An error text without the channel's URL or secrets."""
    text = redact(str(reason))
    for secret in (
        channel.url,
        os.environ.get(channel.secret_env or "\0", ""),
        os.environ.get(channel.password_env or "\0", ""),
    ):
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text[:300]
