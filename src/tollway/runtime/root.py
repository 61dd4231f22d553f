"""The composition root: builds every long-lived part once and wires them together.

Nothing else constructs transports, stores or the gateway; tests build a ``Runtime``
the same way ``tollway serve`` does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from tollway.usage.access_log import AccessLog
from tollway.usage.accountant import Accountant
from tollway.gateway.edge import ClientIp, GatewayApp
from tollway.config.load import ConfigError, LoadedConfig, load_config, load_config_text
from tollway.consumers.store import ConsumerDirectory, config_consumers
from tollway.gateway.call import Gateway
from tollway.usage.metrics import UsageMetrics
from tollway.mockllm import create_app as create_mock_app
from tollway.usage.pricing import PriceTable
from tollway.proxy.ai_proxy import AiProxy
from tollway.services import Services
from tollway.gateway.snapshot import Snapshot
from tollway.state import open_state_store
from tollway.storage import open_database
from tollway.upstream.asgi_transport import AsgiTransport
from tollway.upstream.pooled import PooledTransport
from tollway.usage.store import UsageStore
from tollway.usage.writer import UsageWriter

log = logging.getLogger("tollway")


@dataclass
class ReloadResult:
    ok: bool
    errors: list[str] = field(default_factory=list)
    restart_needed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ConfigSource:
    """Where the config comes from: a file (reloadable) or the built-in quickstart text."""

    path: Path | None
    text: str | None = None

    def load(self) -> LoadedConfig:
        if self.path is not None:
            return load_config(self.path)
        assert self.text is not None
        return load_config_text(self.text, base_dir=Path.cwd())


class Runtime:
    def __init__(self, source: ConfigSource, loaded: LoadedConfig, *, access_log: AccessLog | None = None) -> None:
        self.source = source
        self.loaded = loaded
        cfg = loaded.config
        self.services = Services(
            transport=PooledTransport(),
            mock_transport=AsgiTransport(create_mock_app()),
            state=open_state_store(cfg.storage.state),
        )
        self.database = open_database(cfg.storage.database, loaded.base_dir)
        self.directory = ConsumerDirectory(
            self.database, config_names=lambda: {c["name"] for c in config_consumers(self.loaded)}
        )
        self.services.directory = self.directory
        self.snapshot = Snapshot(loaded, self.services)
        self.access_log = access_log or AccessLog()
        # Usage: records queued to one writer task, metrics on a registry of our own.
        self.usage_store = UsageStore(self.database)
        self.usage_writer = UsageWriter(self.usage_store)
        self.metrics = UsageMetrics()
        prices = PriceTable(cfg.pricing)
        self.metrics.configure(loaded, prices)
        self.accountant = Accountant(
            [self.usage_writer.add], access_log=self.access_log, metrics=self.metrics, prices=prices
        )
        self.gateway = Gateway(
            self.snapshot,
            AiProxy(cfg.server.upstream_timeout_s, cfg.server.abandoned_stream_drain_s),
            cfg.server.max_body_bytes,
            self.accountant.finish,
        )
        self.app = GatewayApp(self.gateway, ClientIp(cfg.server.trusted_proxies))
        for w in loaded.warnings:
            log.warning("%s", w)

    def reload(self, source: str) -> ReloadResult:
        """Validate the config whole and swap it in, or keep the old one and say why."""
        if self.source.path is None:
            return ReloadResult(False, ["no config file to reload: running the built-in quickstart config"])
        try:
            loaded = self.source.load()
            snapshot = Snapshot(loaded, self.services)
        except ConfigError as exc:
            log.error("reload (%s) rejected; the old config stays:\n  %s", source, "\n  ".join(exc.problems))
            return ReloadResult(False, exc.problems)
        old, new = self.loaded.config, loaded.config
        restart = [name for name in ("server", "admin", "storage") if getattr(old, name) != getattr(new, name)]
        for name in restart:
            log.warning("reload (%s): changes to %r need a restart and were not applied", source, name)
        for w in loaded.warnings:
            log.warning("%s", w)
        self.loaded = loaded
        self.snapshot = snapshot
        prices = PriceTable(loaded.config.pricing)
        # Calls that ended before the reload are accounted (priced, labelled) under the
        # old config first.
        self.accountant.reprice(prices)
        self.metrics.configure(loaded, prices)
        self.gateway.swap(snapshot)
        log.warning("reload (%s): new config in effect", source)
        return ReloadResult(True, restart_needed=restart)

    async def start(self) -> None:
        await self.database.connect()
        await self.directory.start()
        await self.usage_store.migrate()
        self.usage_writer.start()
        self.access_log.start()
        self.accountant.start()

    async def stop(self) -> None:
        await self.services.transport.aclose()
        await self.services.state.aclose()
        await self.directory.stop()
        # Last before the database closes: calls cut off by the shutdown timeout finish
        # their accounting during the awaits above, and their records still go in (the
        # accountant, once stopped, hands each later one on at once).
        await self.accountant.stop()
        await self.access_log.stop()
        await self.usage_writer.stop()
        await self.database.close()
