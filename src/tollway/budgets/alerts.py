"""Budget threshold alerts (``governance.alerts``): when a consumer's or group's spend
first reaches a share of its budget in a period, one POST to the webhook, across every
replica.

Once per threshold and period: the replica whose settlement crossed it *claims* the
alert in the state store (one atomic set-if-absent that lives past the period), and
only the claimant sends. Sending runs in the background, retried with growing pauses,
so a slow or absent receiver never holds up a call. A process remembers the alerts it
has seen claimed, so calls past a threshold do not ask the store again.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import orjson

from tollway.budgets.periods import Span
from tollway.config.schema import AlertsConfig
from tollway.consumers.consumer import Budget
from tollway.state import Allowance, StateStore

log = logging.getLogger("tollway.budgets")

NANO = 1_000_000_000
# How long a claim outlives its period (a total budget's: about ten years).
_CLAIM_GRACE_MS = 86_400_000
_TOTAL_CLAIM_MS = 10 * 365 * 86_400_000
# Remembered claims before the memory is cleared (keys come from config and periods).
_SEEN_LIMIT = 100_000


def _claim_ttl_ms(span: Span) -> int:
    return span.end_ms - span.start_ms + _CLAIM_GRACE_MS if span.end_ms is not None else _TOTAL_CLAIM_MS


class Alerts:
    """One per process; ``configure`` at start and at each reload, ``stop`` at the end.
    ``delays_s`` are the pauses before each retry."""

    def __init__(
        self,
        state: StateStore,
        *,
        delays_s: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0),
        timeout_s: float = 5.0,
    ) -> None:
        self.state = state
        self.delays_s = delays_s
        self.timeout_s = timeout_s
        self.config: AlertsConfig | None = None
        self.sent = 0
        self._seen: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def configure(self, config: AlertsConfig | None) -> None:
        self.config = config

    def spent(self, kind: str, name: str, allowance: Allowance, span: Span, budget: Budget, value: int) -> None:
        """A settlement left the subject's spend at ``value`` nano-dollars: claim and send
        each threshold it reached that no one has claimed yet. Never blocks."""
        config = self.config
        if config is None:
            return
        for threshold in config.thresholds:
            if value < threshold * budget.usd * NANO:
                break  # thresholds are sorted
            key = f"alert:{allowance.key}:{threshold:g}"
            if key in self._seen:
                continue
            if len(self._seen) >= _SEEN_LIMIT:
                self._seen.clear()
            self._seen.add(key)
            event = {
                "event": "budget.threshold",
                "subject": {"kind": kind, "name": name},
                "threshold": threshold,
                "spend_usd": value / NANO,
                "budget_usd": budget.usd,
                "period": budget.period,
                "resets_at": span.resets_at,
            }
            task = asyncio.get_running_loop().create_task(
                self._claim_and_send(key, _claim_ttl_ms(span), config.webhook, event)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def restored(self, allowance_key: str, span: Span, budget: Budget, value: int) -> None:
        """A spend counter was rebuilt from the usage records at ``value`` (its store had
        lost it, and the alerts' claims with it): the thresholds it reaches were crossed
        before the loss, so their alerts are claimed again without sending. Otherwise
        the next settlement would send each of them a second time."""
        config = self.config
        if config is None:
            return
        for threshold in config.thresholds:
            if value < threshold * budget.usd * NANO:
                break
            key = f"alert:{allowance_key}:{threshold:g}"
            try:
                await self.state.claim(key, _claim_ttl_ms(span))
            except Exception as exc:
                log.warning("budget alert: could not claim %s again after a rebuild (%s)", key, exc)
                return
            self._seen.add(key)

    async def _claim_and_send(self, key: str, ttl_ms: int, url: str, event: dict[str, Any]) -> None:
        try:
            if not await self.state.claim(key, ttl_ms):
                return  # another replica (or this one, earlier) sends it
        except Exception as exc:
            self._seen.discard(key)  # try again at the next settlement
            log.warning("budget alert: could not claim %s (%s); trying again at the next call", key, exc)
            return
        body = orjson.dumps(event)
        for attempt, delay in enumerate((0.0, *self.delays_s)):
            if delay:
                await asyncio.sleep(delay)
            try:
                session = self._client()
                async with session.post(url, data=body, headers={"content-type": "application/json"}) as resp:
                    if resp.status < 300:
                        self.sent += 1
                        return
                    problem = f"status {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            log.warning("budget alert to the webhook failed (attempt %d): %s", attempt + 1, problem)
        log.error("budget alert %s not delivered after %d attempts", key, len(self.delays_s) + 1)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self._session

    async def stop(self, timeout_s: float = 2.0) -> None:
        """Give alerts on their way ``timeout_s`` to finish, then drop them."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)
        for task in list(self._tasks):
            task.cancel()
        if self._session is not None:
            await self._session.close()


__all__ = ["Alerts"]
