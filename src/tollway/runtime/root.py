"""The composition root: builds every long-lived part once, wires them together, and
reloads, starts and stops them as one.

Nothing else constructs transports, stores, the gateway or the admin API: tests build a
``Runtime`` the same way ``tollway serve`` does. Its parts, in the order a call meets
them: ``app`` (the gateway's ASGI edge) → ``gateway`` (on the current ``snapshot``) →
``accountant`` → access log, metrics, usage writer, and the span export when telemetry
is on. ``admin`` serves the admin API.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from tollway import __version__
from tollway.admin import audit as admin_audit
from tollway.admin import consumers as admin_consumers
from tollway.admin import dashboard as admin_dashboard
from tollway.admin import groups as admin_groups
from tollway.admin import openapi, readiness
from tollway.admin import usage as admin_usage
from tollway.admin.app import ADMIN_RELOAD, AdminApp
from tollway.budgets.alerts import Alerts
from tollway.budgets.enforcer import Budgets, Subject
from tollway.budgets.history import SpendHistory
from tollway.cache import CacheStores
from tollway.chain import FailureLog
from tollway.config.admin_exposure import exposure_problem
from tollway.config.load import ConfigError, LoadedConfig, ReloadResult
from tollway.config.schema import Config, TelemetryConfig
from tollway.consumers.consumer import Budget, Consumer, ConsumerListed
from tollway.consumers.directory import ConsumerDirectory
from tollway.consumers.groups import Group, GroupDirectory
from tollway.consumers.holdings import Holdings
from tollway.consumers.store import ConsumerStore
from tollway.errors import GatewayError
from tollway.gateway.call import Gateway
from tollway.gateway.edge import ClientIp, GatewayApp
from tollway.gateway.snapshot import Snapshot, build_problems
from tollway.mcp.relay import McpRelay
from tollway.mockllm import create_app as create_mock_app
from tollway.plugins.key_auth import config_consumer_listing, config_consumers, config_tools
from tollway.proxy.ai_proxy import AiProxy
from tollway.proxy.ownership import Ownership
from tollway.quotas.ledger import QuotaLedger
from tollway.runtime.config_source import ConfigSource
from tollway.services import Services
from tollway.state import open_state_store
from tollway.state.memory import MemoryStateStore
from tollway.storage import StorageError, open_database, records_folder
from tollway.storage.audit import AuditLog
from tollway.upstream.asgi_transport import AsgiTransport
from tollway.upstream.pooled import PooledTransport
from tollway.usage.access_log import AccessLog
from tollway.usage.accountant import Accountant
from tollway.usage.metrics import UsageMetrics, configured_models
from tollway.usage.pricing import PriceTable
from tollway.usage.retention import Retention
from tollway.usage.store import UsageStore
from tollway.usage.writer import UsageWriter

if TYPE_CHECKING:
    from tollway.usage.span_export import SpanExport

log = logging.getLogger("tollway")
# How long a budget subject's holds and running counts stay in the state store after its
# last admission (``Budgets``'s ``hold_s``).
_IDLE_SUBJECT_S = 7 * 24 * 3600

# Config sections a reload cannot apply: sockets, the admin listener, the stores.
_RESTART_ONLY = ("server", "admin", "storage")


# The source of a reload one worker's admin API asked of the others (``--workers``): the
# asking worker records it, as the admin's.
FORWARDED_RELOAD = "admin API, through another worker"
# A worker started again taking the file as the others run it (``serve._catch_up``): not
# a change of the gateway's (no audit event), and refused for every name a runtime
# consumer or group holds, since the config it started on is not what the others run.
CATCH_UP = "a worker started again"


def _consumer_of(listed: ConsumerListed) -> Consumer:
    """A listed consumer as the budgets know one: its name, groups, budget and
    max_parallel (what decides which budgets apply)."""
    b = listed["budget"]
    return Consumer(
        listed["name"],
        groups=tuple(listed["groups"]),
        source=listed["source"],
        budget=Budget(b["usd"], b["period"]) if b is not None else None,
        max_parallel=listed["max_parallel"],
    )


class Runtime:
    """One process's gateway. ``on_reload_ok`` runs after a reload asked of this process's
    admin API took effect (with several workers: tell the others). ``records_reloads``:
    whether this process speaks for its group: a reload by SIGHUP or a changed file is an
    audit event here, and the config's warnings are said here (with several workers every
    one loads and reloads the config, and one of them records and says it)."""

    def __init__(
        self,
        source: ConfigSource,
        loaded: LoadedConfig,
        *,
        access_log: AccessLog | None = None,
        on_reload_ok: Callable[[], None] | None = None,
        records_reloads: bool = True,
        pinned: Mapping[str, Mapping[str, object]] | None = None,
    ) -> None:
        self.source = source
        # Fields the command line set over the file's (``serve --port``, by section):
        # a reload's change to one of them needs no restart, it would change nothing.
        self.pinned = pinned or {}
        self.loaded = loaded
        # The file's content the config in effect came from (``ConfigSource.digest``).
        self.applied_digest = source.digest()
        # What the process started with: the sections a reload cannot change stay as
        # they were then, whatever the files reloaded since said.
        self.started_with = loaded.config
        self.records_reloads = records_reloads
        cfg = loaded.config
        self.database = open_database(cfg.storage.database, loaded.base_dir)
        self.consumer_store = ConsumerStore(self.database, config_names=self._config_consumer_names)
        # Budgets and max_parallel (SPEC §10) on groups: the config's, and runtime ones
        # the directory loads with the consumers.
        self.groups = GroupDirectory()
        self.groups.configure(cfg.groups)
        self.directory = ConsumerDirectory(self.consumer_store, groups=self.groups)
        state = open_state_store(cfg.storage.state)
        self.audit = AuditLog(self.database)
        # ai-quota balances: the database keeps the truth, the state store decides calls.
        self.quota_ledger = QuotaLedger(self.database, state)
        # Budgets and max_parallel (SPEC §10) on consumers and groups: before the services,
        # which hand them to plugins that make calls of their own (ai-cache's embeddings).
        self.alerts = Alerts(state)
        self.alerts.configure(cfg.governance.alerts)
        self.budgets = Budgets(
            state,
            SpendHistory(self.database),
            self.groups,
            self._group_members,
            self._flush_records,
            # What calls in flight hold is given back by their end, or with the lease of
            # their process (``state.redis``): a subject's holds and running counts are
            # only forgotten once it has had no call for a week. (They expired with the
            # call's longest silence: a stream that kept sending for longer lost its
            # place under max_parallel while it ran, a red team found.)
            hold_s=_IDLE_SUBJECT_S,
            alerts=self.alerts,
        )
        self.directory.on_members_changed = self.budgets.members_changed
        self.services = Services(
            transport=PooledTransport(max_answer_bytes=cfg.server.max_upstream_body_bytes),
            mock_transport=AsgiTransport(create_mock_app()),
            directory=self.directory,
            state=state,
            local_state=MemoryStateStore(),
            quota_ledger=self.quota_ledger,
            # ai-cache: exact entries on the state store, semantic vectors in the database.
            caches=CacheStores(state, self.database),
            audit=self.audit,
            side_call_spend=self.budgets,
        )
        self.failures = FailureLog()
        self.snapshot = Snapshot(loaded, self.services, self.failures)
        # Usage: records queued to one writer task, metrics on a registry of our own.
        self.access_log = access_log or AccessLog()
        self.usage_store = UsageStore(self.database)
        days = cfg.storage.retention_days
        self.retention = Retention(self.usage_store, days) if days is not None else None
        self.metrics = UsageMetrics()
        # Journal and dead-letter file in the records folder (docs/records.md).
        self.usage_writer = UsageWriter(
            self.usage_store,
            folder=records_folder(cfg.storage.database, loaded.base_dir, cfg.storage.data_folder),
            on_dead_letter=self.metrics.record_failed,
        )
        prices = PriceTable(cfg.pricing)
        self.metrics.configure(configured_models(loaded, config_consumers(loaded)), prices)
        self.metrics.configure_mcp(config_tools(loaded) | self.snapshot.mcp_tool_names())
        # Traces (telemetry on): the accountant hands traced calls to the span export.
        self.span_export = _span_export(cfg.telemetry)
        # Exports a reload replaced: still sending what they held; waited for at stop.
        self._retired_exports: list[SpanExport] = []
        self.accountant = Accountant(
            [self.usage_writer.add],
            access_log=self.access_log,
            metrics=self.metrics,
            prices=prices,
            traces=self.span_export.add if self.span_export is not None else None,
        )
        # Which consumer made each file and batch at the providers (SPEC §9).
        self.holdings = Holdings(self.database)
        self.budgets.configure(prices)
        self.gateway = Gateway(
            self.snapshot,
            AiProxy(
                cfg.server.upstream_timeout_s,
                cfg.server.abandoned_stream_drain_s,
                Ownership(self.holdings),
                cfg.server.max_upstream_body_bytes,
                self.services.state,
            ),
            cfg.server.max_body_bytes,
            self.accountant.finish,
            McpRelay(self.services.transport, self.services.state),
            self.budgets,
        )
        self.app = GatewayApp(self.gateway, ClientIp(cfg.server.trusted_proxies))
        self.admin = self._admin_app(on_reload_ok)
        self._say_warnings(loaded.warnings)

    def _say_warnings(self, warnings: Sequence[str]) -> None:
        # Once per process group (SPEC §8: one warning each), not once per worker.
        if self.records_reloads:
            for w in warnings:
                log.warning("%s", w)

    def _taken_names(self, loaded: LoadedConfig, *, new_only: bool = False) -> list[str]:
        """The config's consumers and groups whose names runtime ones (the admin API's,
        the CLI's) hold already, each as a problem: a name belongs to one consumer, one
        group. ``new_only``: only those the running config does not hold too (a reload
        refuses a new clash; one the gateway started with was said then)."""
        consumers = {c["name"] for c in config_consumers(loaded)} & self.directory.names()
        groups = {g.name for g in loaded.config.groups} & set(self.groups.runtime)
        if new_only:
            consumers -= self._config_consumer_names()
            groups -= {g.name for g in self.loaded.config.groups}
        return [
            *(
                f"key-auth consumer {name!r} is also a runtime consumer (made with the admin API or "
                f"'tollway consumers add'): revoke that one first (DELETE /api/consumers/{name}) or rename one"
                for name in sorted(consumers)
            ),
            *(
                f"group {name!r} is also a runtime group (made with POST /api/groups): remove that one first "
                f"(DELETE /api/groups/{name}) or rename one"
                for name in sorted(groups)
            ),
        ]

    def _config_consumer_names(self) -> set[str]:
        # Asked at each use, so the consumers of a reloaded config are the ones protected.
        return {c["name"] for c in config_consumers(self.loaded)}

    async def _group_members(self, group: str) -> list[str]:
        """The consumers, from the config and the database, that name ``group``."""
        names = {c["name"] for c in config_consumers(self.loaded) if group in c["groups"]}
        names.update(c["name"] for c in await self.directory.list() if group in c["groups"])
        return sorted(names)

    async def _spend_of(self, name: str) -> list[dict[str, object]]:
        """The consumer's current spend, one entry per budget that applies (its groups'
        included), for ``GET /api/consumers/NAME``."""
        listed: ConsumerListed | None = next(
            (c for c in config_consumer_listing(self.loaded) if c["name"] == name), None
        ) or await self.directory.get(name)
        return (await self._spend_of_each([listed]))[0] if listed is not None else []

    async def _spend_of_each(self, consumers: list[ConsumerListed]) -> list[list[dict[str, object]]]:
        """Each consumer's current spend, as ``_spend_of`` gives one's, for ``GET
        /api/consumers?spend=true``: a budget several of them share (a group's) is read
        once."""
        subjects = [self.budgets.subjects(_consumer_of(c)) for c in consumers]
        unique = {(s.kind, s.name): s for each in subjects for s in each}
        try:
            entries = await self.budgets.spend(list(unique.values()))
        except GatewayError as exc:  # the state store (or the records) cannot answer now
            raise StorageError(exc.message, unreachable=True) from None
        read = {(e["kind"], e["name"]): dict(e) for e in entries}
        return [[read[(s.kind, s.name)] for s in each if (s.kind, s.name) in read] for each in subjects]

    async def _group_spend(self, group: Group) -> list[dict[str, object]]:
        """The group's current spend (one entry, when it has a budget), for ``/api/groups``."""
        try:
            entries = await self.budgets.spend([Subject("group", group.name, group.budget, group.max_parallel)])
        except GatewayError as exc:  # the state store (or the records) cannot answer now
            raise StorageError(exc.message, unreachable=True) from None
        return [dict(e) for e in entries]

    async def _flush_records(self) -> None:
        """Write the records of this process's finished calls (a budget rebuild reads them)."""
        self.accountant.drain()
        await self.usage_writer.sync()

    def _admin_app(self, on_reload_ok: Callable[[], None] | None) -> AdminApp:
        admin = AdminApp(self.loaded.config.admin.token, lambda source: self.reload(source), on_reload_ok)
        admin_consumers.register(
            admin,
            self.directory,
            lambda: config_consumer_listing(self.loaded),
            self._spend_of,
            self._spend_of_each,
            self.groups,
            lambda: [s.name for s in self.loaded.config.mcp_servers],
        )
        admin_usage.register(admin, self.accountant, self.usage_store, self.usage_writer, self.metrics)
        admin_audit.register(admin, self.audit)
        admin_groups.register(admin, self.directory, self.groups, self._group_members, self._group_spend)
        admin_dashboard.register(admin)
        openapi.register(admin, __version__)
        self.readiness = readiness.register(
            admin,
            {
                "config": self._config_in_effect,
                "database": lambda: self.database.fetch("SELECT 1"),
                "state": self.services.state.ping,
            },
        )
        return admin

    async def _config_in_effect(self) -> None:
        # Serving means a config was built; say which file it came from if it fails later.
        if self.snapshot is None:
            raise RuntimeError("no config in effect")

    def reload(self, source: str) -> ReloadResult:
        """Validate the config whole and swap it in, or keep the old one and say why."""
        if self.source.path is None:
            return ReloadResult(False, ["no config file to reload: running the built-in quickstart config"])
        try:
            digest = self.source.digest()
            loaded = self.source.load()
            snapshot = Snapshot(loaded, self.services, self.failures)
        except ConfigError as exc:
            problems = exc.problems + build_problems(exc.parsed, self.services)
            log.error("reload (%s) rejected; the old config stays:\n  %s", source, "\n  ".join(problems))
            return ReloadResult(False, problems)
        # (What the next start would refuse is no config to run either.)
        exposed = exposure_problem(loaded.config.admin.host, loaded.config.admin.token)
        refused = [exposed] if exposed else self._taken_names(loaded, new_only=source != CATCH_UP)
        if refused:
            log.error("reload (%s) rejected; the old config stays:\n  %s", source, "\n  ".join(refused))
            return ReloadResult(False, refused)
        old, new = self.loaded.config, loaded.config
        # Against what runs, not the file before: a change reverted is no change.
        restart = [name for name in _RESTART_ONLY if self._as_run(self.started_with, name) != self._as_run(new, name)]
        if source != CATCH_UP:  # (said when the others took the file)
            self._say_warnings(
                [f"reload ({source}): changes to {name!r} need a restart and were not applied" for name in restart]
                + list(loaded.warnings)
            )
        self.loaded = loaded
        self.applied_digest = digest
        retired, self.snapshot = self.snapshot, snapshot
        prices = PriceTable(loaded.config.pricing)
        # Calls that ended before the reload are accounted (priced, labelled) under the
        # old config first.
        self.accountant.reprice(prices)
        self.budgets.configure(prices)
        self.groups.configure(new.groups)
        self.directory.reconfigured()
        self.alerts.configure(new.governance.alerts)
        self.metrics.configure(configured_models(loaded, config_consumers(loaded)), prices)
        self.metrics.configure_mcp(config_tools(loaded) | snapshot.mcp_tool_names())
        # sample_ratio comes with the snapshot; where spans go needs an export of its own.
        if _destination(new.telemetry) != _destination(old.telemetry):
            self._swap_span_export(new.telemetry, source)
        self.gateway.swap(snapshot)
        retired.retire()
        # With workers, the one that speaks for them says it (each took the same file);
        # a reload one of them rejected is told by each that rejected it.
        said = logging.INFO if self.records_reloads and source != CATCH_UP else logging.DEBUG
        log.log(said, "reload (%s): new config in effect", source)
        if source not in (ADMIN_RELOAD, FORWARDED_RELOAD, CATCH_UP) and self.records_reloads:
            # A reload the admin API did not ask for (SIGHUP, the file watcher) changes
            # what the gateway enforces all the same: audited as the admin's are (with
            # workers, by the one that serves the admin API).
            self.audit.note("config.reload", None, {"source": source}, None)
        return ReloadResult(True, restart_needed=restart)

    def _as_run(self, config: Config, section: str) -> object:
        """A section of ``config`` with the command line's fields over the file's."""
        value = getattr(config, section)
        pinned = self.pinned.get(section)
        return value.model_copy(update=pinned) if pinned else value

    def _swap_span_export(self, config: TelemetryConfig, source: str) -> None:
        """Traces go where the new config says from now on. Calls that ended before are
        with the old export (the accountant drained them to it), which sends them and
        ends; calls in flight go to the new one, or nowhere when telemetry is now off."""
        old, new = self.span_export, _span_export(config)
        if new is not None:
            new.start()
        self.span_export = new
        self.accountant.traces = new.add if new is not None else None
        if old is not None:
            old.close()
            self._retired_exports.append(old)
        log.info("reload (%s): telemetry %s", source, f"sends to {new.url}" if new is not None else "is off")

    async def start(self) -> None:
        await self.database.connect()
        await self.directory.start()
        for problem in self._taken_names(self.loaded):
            # Started as it is (the config's consumer or group is the one served), but said.
            log.error("config: %s; the runtime one is not served meanwhile", problem)
        await self.usage_store.migrate()
        await self.holdings.migrate()
        await self.audit.migrate()
        if self.retention is not None:
            self.retention.start()
        await self.quota_ledger.start()
        self.usage_writer.start()
        self.access_log.start()
        if self.span_export is not None:
            self.span_export.start()
        self.accountant.start()

    async def stop(self) -> None:
        await self.snapshot.aclose()
        await self.services.transport.aclose()
        await self.services.state.aclose()
        await self.directory.stop()
        if self.retention is not None:
            await self.retention.stop()
        # Last before the database closes: calls cut off by the shutdown timeout finish
        # their accounting during the awaits above, and their records still go in (the
        # accountant, once stopped, hands each later one on at once).
        await self.accountant.stop()
        if self.span_export is not None:
            await self.span_export.stop()
        for retired in self._retired_exports:
            await retired.wait_closed(1.0)
        await self.access_log.stop()
        await self.usage_writer.stop()
        await self.quota_ledger.stop()
        await self.audit.drain()
        await self.alerts.stop()
        if self.services.caches is not None:
            await self.services.caches.stop()
        await self.database.close()
        await self.readiness.stop()  # a check stuck on the database ends with its connections


def _span_export(config: TelemetryConfig) -> SpanExport | None:
    """The span export of ``telemetry:``; None while it has no ``otlp_endpoint``."""
    if config.otlp_endpoint is None:
        return None
    # OpenTelemetry is imported only when telemetry is on: a gateway without it never
    # loads the SDK.
    from tollway.usage.span_export import SpanExport

    return SpanExport(config)


def _destination(config: TelemetryConfig) -> tuple[str | None, str]:
    return config.otlp_endpoint, config.service_name
