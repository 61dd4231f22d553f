"""``Budgets``: money budgets and ``max_parallel`` on consumers and groups (SPEC §10),
enforced by the gateway on every call whose consumer has one, directly or by a group.

**Reserve, then settle.** Before the call goes upstream, ``admit`` holds the most it can
cost: the price of the prompt's estimated tokens plus its output limit (``max_tokens``
and the like, times ``n``; ``DEFAULT_OUTPUT_TOKENS`` when it names none), against the
consumer and each limited group at once, in one step of the state store (one Redis round
trip): the call is admitted only if every subject's spend in the period, plus what calls
in flight hold, plus this hold fit its budget, and every ``max_parallel`` has room.
When the call ends, however it ends, ``release`` gives the hold back and adds what the
call cost, priced exactly as its usage record's ``cost_usd`` (``usage.record.call_cost``).
The gateway awaits ``release`` before it hands the call to the accountant: a call's cost
is either counted by the store or in the database when a rebuild reads it, never both.

**Rebuilt from the records.** A spend counter the store lacks (first use, a restarted
process's memory, a Redis flushed) is rebuilt from ``usage_records`` (the sum of the
subject's calls' ``cost_usd`` in the period), after this process's own finished calls
are written, and set only where still missing (replicas racing write it once).

Amounts are integer nano-dollars, so a counter equals the sum of its records' costs.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, TypedDict

from tollway.budgets.alerts import Alerts
from tollway.budgets.continuations import Continuations
from tollway.budgets.history import NANO, SpendHistory, to_nano
from tollway.budgets.periods import Span, span_of
from tollway.consumers.consumer import Budget, Consumer
from tollway.consumers.groups import Group, GroupDirectory
from tollway.errors import BadRequest, Forbidden, GatewayError, RateLimited
from tollway.exchange import Exchange, StateKey
from tollway.plugin import UpstreamCall
from tollway.plugins.limits.reservation import cache_writes, output_tokens, prompt_tokens, spent_elsewhere
from tollway.protocols.apis import GEMINI_PROMPT_METHODS, RESPONSES_COMPACT, gemini_method
from tollway.protocols.form import form_fields
from tollway.routing.routes import Route
from tollway.state import ADMITTED, Admission, Allowance, SpendAdmission, StateStore, StateUnavailable
from tollway.state.memory import MemoryStateStore
from tollway.usage.pricing import PriceTable, billed_per, reports_media_tokens
from tollway.usage.record import UNIT_BILLED_APIS, call_cost

log = logging.getLogger("tollway.budgets")

# What a call that names no output limit holds for its output. No price table lists
# models' output caps, so a call without ``max_tokens`` can cost more than it held: the
# overshoot bound (docs/limits.md) counts that.
DEFAULT_OUTPUT_TOKENS = 4096
# How long past its period a spend counter is kept (late settlements still land in it).
_PERIOD_GRACE_MS = 86_400_000
# Rebuild attempts in one admission before giving up (a counter lost again meanwhile).
_REBUILDS = 3

Kind = Literal["consumer", "group"]


@dataclass(frozen=True, slots=True)
class Subject:
    """A consumer or group whose limits a call is held to."""

    kind: Kind
    name: str
    budget: Budget | None
    max_parallel: int | None

    def allowance(self, span: Span | None) -> Allowance:
        budget = to_nano(self.budget.usd) if self.budget is not None else -1
        tag = span.tag if span is not None else "-"
        initial = self.kind[0]
        return Allowance(
            f"spend:{initial}:{self.name}:{tag}",
            budget,
            # (Not "running:": that was a counter; a process's calls are a hash field now.)
            f"runs:{initial}:{self.name}",
            self.max_parallel if self.max_parallel is not None else -1,
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """A consumer's subjects and counters for the current periods, until ``until_ms``.
    (Slots, not a NamedTuple: its fields are read on every budgeted call, and Python 3.11
    reads a NamedTuple's the slow way.)"""

    consumer: Consumer
    subjects: tuple[Subject, ...]
    budgeted: Subject | None  # the first with a budget
    spans: tuple[Span | None, ...]
    allowances: tuple[Allowance, ...]
    until_ms: float

    def money_only(self) -> Plan:
        """This plan without its max_parallel counts: a side call's (ai-cache's
        embedding), made within a client call that counts as running already."""
        return replace(self, allowances=tuple(Allowance(a.key, a.budget, a.running_key, -1) for a in self.allowances))


# What an admitted call holds, to release when it ends: the amount, against each of
# its plan's subjects, settled at the price table, and the lease it was counted under
# (``SpendAdmission.lease``). A plain tuple: one is made and read on every budgeted call.
Hold = tuple[Plan, int, PriceTable, str]

HOLD: StateKey[Hold] = StateKey("budgets.hold")

# Consumers whose plans are remembered at most (names come from the config and database).
_PLAN_LIMIT = 10_000


class _Plans(dict[str, Plan]):
    version = -1


class SpendEntry(TypedDict):
    """One budget that applies to a consumer, as ``GET /api/consumers/NAME`` shows it."""

    kind: Kind
    name: str
    period: str
    spend_usd: float
    budget_usd: float
    resets_at: str | None


def _usd(nano: int) -> str:
    return f"${nano / NANO:.6f}".rstrip("0").rstrip(".")


# What a call for a model on a route may go upstream as (``Snapshot.upstream_calls``).
UpstreamCalls = Callable[[Route, str], tuple[UpstreamCall, ...]]


class Budgets:
    """One per process. ``members(group)`` answers the names of the consumers in a
    group (for a rebuild); ``flush`` writes this process's finished calls' records."""

    def __init__(
        self,
        state: StateStore,
        history: SpendHistory,
        groups: GroupDirectory,
        members: Callable[[str], Awaitable[list[str]]],
        flush: Callable[[], Awaitable[None]],
        *,
        hold_s: float,
        alerts: Alerts | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.history = history
        self.groups = groups
        self.members = members
        self.flush = flush
        self.hold_ms = int(hold_s * 1000)
        self.alerts = alerts
        self.clock = clock
        self.prices = PriceTable()
        # Counters rebuilt from the records (for tests and the log).
        self.rebuilt = 0
        self._rebuilding: dict[str, asyncio.Task[None]] = {}
        self._plans = _Plans()
        # A store in this process's memory answers without suspending: nothing can cut a
        # release short, so the gateway need not shield it (a task per call), and a call
        # is held and settled synchronously (``admit_now``, ``release_now``).
        self._memory = state if isinstance(state, MemoryStateStore) else None
        self.settles_at_once = self._memory is not None
        # What Responses calls continue by reference (their hidden input).
        self.continuations = Continuations(state)

    def configure(self, prices: PriceTable) -> None:
        """The price table calls are held and settled at from now on (a reload)."""
        self.prices = prices
        self._plans.clear()  # a reload may have changed consumers' budgets

    # --- who a call is held to ------------------------------------------------------

    def subjects(self, consumer: Consumer) -> list[Subject]:
        """The consumer and its declared groups, those with a budget or max_parallel."""
        found = []
        if consumer.budget is not None or consumer.max_parallel is not None:
            found.append(Subject("consumer", consumer.name, consumer.budget, consumer.max_parallel))
        for g in self.groups.limiting(consumer):
            found.append(Subject("group", g.name, g.budget, g.max_parallel))
        return found

    # --- a call ---------------------------------------------------------------------

    def _plan(self, consumer: Consumer, now_ms: float) -> Plan:
        """The consumer's subjects and this period's counters, remembered per consumer
        until a period ends or the groups change (a call's hot path)."""
        plans = self._plans
        plan = plans.get(consumer.name)
        # Keyed by name (a string's hash is kept), good only for the same object: an
        # edited consumer is a new one.
        if (
            plan is not None
            and plan.consumer is consumer
            and now_ms < plan.until_ms
            and plans.version == self.groups.version
        ):
            return plan
        if plans.version != self.groups.version:
            plans.clear()
            plans.version = self.groups.version
        subjects = tuple(self.subjects(consumer))
        now = now_ms / 1000
        spans = tuple(span_of(s.budget.period, now) if s.budget is not None else None for s in subjects)
        ends = [span.end_ms for span in spans if span is not None and span.end_ms is not None]
        plan = Plan(
            consumer,
            subjects,
            next((s for s in subjects if s.budget is not None), None),
            spans,
            tuple(s.allowance(span) for s, span in zip(subjects, spans, strict=True)),
            min(ends) if ends else math.inf,
        )
        if len(plans) >= _PLAN_LIMIT:
            plans.clear()
        plans[consumer.name] = plan
        return plan

    def _amount(self, ex: Exchange, plan: Plan, upstream_calls: UpstreamCalls, hidden: int = 0) -> int:
        """The most this call can cost, in nano-dollars (0 when no subject has a budget,
        the call only counts tokens, or it is one no provider bills: ``_costs_nothing``);
        raises ``model_unpriced`` for a model without a price, a paid call naming none, or
        an images or audio call whose answer will report no token usage.
        ``hidden``: input tokens the call carries by reference (``continuations``)."""
        budgeted = plan.budgeted
        model = ex.model_requested
        if budgeted is None or ex.api == "count_tokens":
            return 0
        if model is None or _reads(ex) or (ex.api in _UNPRICED_APIS and not _priced_anyway(ex)):
            # No model to price it by, an API no provider bills (moderation, whatever
            # model it names), or one whose cost its answer does not say (an Assistants
            # run, a fine-tuning job: billed apart, whatever model it names).
            if _costs_nothing(ex):
                return 0
            what = "names no model the gateway can price" if model is None else "is billed in ways it cannot read"
            raise Forbidden(
                f"{budgeted.kind} {budgeted.name!r} has a budget, and {ex.request.method} {ex.api_path} {what}: "
                "a call it cannot price could spend past the budget",
                reason="budget.unpriced_model",
                code="model_unpriced",
            )
        why = spent_elsewhere(ex)  # (a realtime key is refused above: no model prices "other")
        if why is not None:
            raise Forbidden(
                f"{budgeted.kind} {budgeted.name!r} has a budget, and {why}",
                reason="budget.unpriced_model",
                code="model_unpriced",
            )
        # Held at the dearest way the call may go upstream: a provider that fails may hand
        # it to the next one, mapped to another model (which the record then prices), and
        # a provider's customSettings may raise its output limit. Each model must have a
        # price of its own (the record prices the model sent, not the one asked for), or
        # that call would be settled at nothing.
        calls = upstream_calls(ex.route, model) if ex.route is not None else (UpstreamCall(model),)
        prompt = prompt_tokens(ex) + hidden
        writes = cache_writes(ex)
        most = 0.0
        for n, call in enumerate(calls):
            billed = call.model
            output = output_tokens(ex, DEFAULT_OUTPUT_TOKENS, (call,))
            if ex.api in UNIT_BILLED_APIS:
                _refuse_unreported(ex, budgeted, billed, model)
            found = self.prices.resolve(billed)
            if found is None:
                sent = "" if billed == model else f" (what the route sends {model!r} as"
                if sent and n > 0:
                    sent += " when it fails over"
                raise Forbidden(
                    f"model {billed!r}{sent + ')' if sent else ''} has no price and {budgeted.kind} "
                    f"{budgeted.name!r} has a budget; give the model a price under pricing:",
                    reason="budget.unpriced_model",
                    code="model_unpriced",
                )
            price = found[1].at(prompt)  # (a long prompt at a long context's prices)
            # (A one-hour write only a provider that reports them is billed; any other
            # reports the prompt's writes, if it bills them at all, at the five-minute price.)
            lifetime = "5m" if writes == "1h" and not call.one_hour_writes else writes
            most = max(most, prompt * price.prompt_at_most(lifetime) + output * price.output)
        return math.ceil(most * (NANO / 1_000_000))

    def _hold_or_refuse(self, ex: Exchange, plan: Plan, amount: int, answer: SpendAdmission) -> bool:
        """Hold the call if the store admitted it, or raise its refusal; False when a
        counter is missing (to rebuild)."""
        if answer is ADMITTED or answer.outcome is Admission.ADMITTED:
            ex.put(HOLD, (plan, amount, self.prices, answer.lease))
            return True
        s, span = plan.subjects[answer.subject], plan.spans[answer.subject]
        if answer.outcome is Admission.OVER_BUDGET:
            raise _over_budget(s, span, answer.spent, answer.held, amount)
        if answer.outcome is Admission.TOO_MANY:
            raise RateLimited(
                f"{s.kind} {s.name!r} has {s.max_parallel} calls in flight, its max_parallel",
                reason="concurrency.exceeded",
            )
        return False

    def admit_now(self, ex: Exchange, upstream_calls: UpstreamCalls, running: bool = True) -> bool:
        """``admit`` without suspending, when the store is this process's memory (a
        budgeted call's hot path, no coroutine): True when the call was held, refused
        (raised) or holds nothing; False when ``admit`` must run (another store, or a
        spend counter to rebuild first). The same single step of the same store, so
        the same decision."""
        memory = self._memory
        consumer = ex.consumer
        if consumer is None:
            return True
        if memory is None:
            return False
        plan = self._plan(consumer, self.clock() * 1000)
        if not plan.subjects:
            return True
        if not running:
            if plan.budgeted is None:
                return True
            plan = plan.money_only()
        hidden = self.continuations.hidden_now(ex) if plan.budgeted is not None else 0
        amount = self._amount(ex, plan, upstream_calls, hidden)
        return self._hold_or_refuse(ex, plan, amount, memory.spend_admit_now(plan.allowances, amount))

    async def admit(self, ex: Exchange, upstream_calls: UpstreamCalls, running: bool = True) -> None:
        """Hold this call's most cost against its consumer's budgets and count it as
        running, or raise the SPEC's refusal. The call is billed as the model it goes
        upstream as (``upstream_calls``: the route's mappings applied); a call naming no
        model holds nothing."""
        consumer = ex.consumer
        if consumer is None:
            return
        plan = self._plan(consumer, self.clock() * 1000)
        if not plan.subjects:
            return
        if not running:  # (``admit_now``'s)
            if plan.budgeted is None:
                return
            plan = plan.money_only()
        hidden = await self.continuations.hidden(ex) if plan.budgeted is not None else 0
        amount = self._amount(ex, plan, upstream_calls, hidden)
        for _ in range(_REBUILDS):
            try:
                answer = await self.state.spend_admit(plan.allowances, amount, self.hold_ms)
            except StateUnavailable as exc:
                raise _unavailable(exc) from None
            if self._hold_or_refuse(ex, plan, amount, answer):
                return
            await self._rebuild(plan.subjects[answer.subject], plan.spans[answer.subject],
                                plan.allowances[answer.subject].key)  # fmt: skip
        raise _unavailable("spend counters keep disappearing")

    async def admit_side_call(self, call: Exchange, model: str) -> None:
        """``services.SideCallSpend``: a call a plugin makes for a client call (ai-cache's
        embeddings), held at ``model``'s price like any call."""

        def sent_as(route: Route, asked: str) -> tuple[UpstreamCall, ...]:
            return (UpstreamCall(model),)

        # Money only: the client's call it is made for counts as running (max_parallel
        # 1 refused every embedding once the call was held before it: ``admit_early``).
        if not self.admit_now(call, sent_as, running=False):
            await self.admit(call, sent_as, running=False)

    async def admit_early(self, call: Exchange, upstream_calls: UpstreamCalls) -> None:
        """``services.SideCallSpend``: the client's call held before a plugin spends on
        its behalf (the gateway skips a call already held)."""
        if call.consumer is not None and not self.holds(call) and not self.admit_now(call, upstream_calls):
            await self.admit(call, upstream_calls)

    async def settle_side_call(self, call: Exchange) -> None:
        if self.settles_at_once:
            self.release_now(call)
        elif self.holds(call):
            await asyncio.shield(self.release(call))

    @staticmethod
    def holds(ex: Exchange) -> bool:
        """Whether ``admit`` held anything for this call (most calls: no budget, nothing
        to give back, and no task to shield the release in)."""
        return ex.get(HOLD) is not None

    def release_now(self, ex: Exchange) -> None:
        """``release`` without a coroutine, when the store is this process's memory
        (``settles_at_once``)."""
        hold = ex.get(HOLD)
        if hold is None or self._memory is None:
            return
        try:
            plan, amount, prices, _ = hold
            spent = _spent(prices, ex)
            self._alert(plan, spent, self._memory.spend_release_now(plan.allowances, amount, spent))
            self.continuations.remember_now(ex)
        except Exception:  # never raises, as ``release``: the call's record must still be made
            log.exception("budgets: releasing request %s failed", ex.request_id)

    async def release(self, ex: Exchange) -> None:
        """The call ended: give its hold back and add what it cost (its record's
        ``cost_usd``). Never raises: a store that cannot answer keeps the hold until it
        expires, and the records keep the cost for the next rebuild."""
        hold = ex.get(HOLD)
        if hold is None:
            return
        plan, amount, prices, lease = hold
        spent = _spent(prices, ex)
        try:
            await self.continuations.remember(ex)
        except Exception:
            log.exception("budgets: remembering what request %s continues failed", ex.request_id)
        try:
            after = await self.state.spend_release(plan.allowances, amount, spent, lease)
        except StateUnavailable as exc:
            log.warning("budgets: releasing request %s failed (%s); its hold expires by itself", ex.request_id, exc)
            return
        except Exception:
            log.exception("budgets: releasing request %s failed", ex.request_id)
            return
        self._alert(plan, spent, after)

    def _alert(self, plan: Plan, spent: int, after: Sequence[int | None]) -> None:
        alerts = self.alerts
        if alerts is not None and alerts.config is not None and spent:
            for subject, span, allowance, value in zip(plan.subjects, plan.spans, plan.allowances, after, strict=True):
                if value is not None and subject.budget is not None and span is not None:
                    alerts.spent(subject.kind, subject.name, allowance, span, subject.budget, value)

    # --- rebuilds ---------------------------------------------------------------------

    async def _rebuild(self, subject: Subject, span: Span | None, key: str) -> None:
        """Rebuild one spend counter from the records; concurrent callers share it."""
        task = self._rebuilding.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._restore(subject, span, key), name="budget-rebuild")
            self._rebuilding[key] = task
            task.add_done_callback(lambda t: self._rebuilt(key, t))
        try:
            await asyncio.shield(task)
        except StateUnavailable as exc:
            raise _unavailable(exc) from None
        except GatewayError:
            raise
        except Exception as exc:  # the database: refuse now, try again on the next call
            raise _unavailable(f"the usage records could not be read: {exc}") from None

    def _rebuilt(self, key: str, task: asyncio.Task[None]) -> None:
        self._rebuilding.pop(key, None)
        if not task.cancelled():
            task.exception()

    async def _restore(self, subject: Subject, span: Span | None, key: str) -> None:
        assert span is not None  # only budgets have counters
        await self.flush()
        names = [subject.name] if subject.kind == "consumer" else await self.members(subject.name)
        spent = await self.history.spent(names, span.start_ms, span.end_ms)
        ttl = span.end_ms + _PERIOD_GRACE_MS - int(self.clock() * 1000) if span.end_ms is not None else 0
        if await self.state.spend_restore(key, spent, max(ttl, 1) if span.end_ms is not None else 0):
            self.rebuilt += 1
            log.info("budgets: %s %r spend for %s rebuilt from the usage records: %s", subject.kind, subject.name,
                     span.tag, _usd(spent))  # fmt: skip
            if self.alerts is not None and subject.budget is not None:
                await self.alerts.restored(key, span, subject.budget, spent)

    async def members_changed(self, groups: Iterable[Group]) -> None:
        """These groups' members changed (or the groups came or went): their spend for
        the current period is rebuilt from their members' records at the next call or
        read. The live counter counted each call under the groups its consumer was in
        then, and a rebuild (a restart, a flush) sums the current members' records: left
        apart, the two disagreed, and moving a heavy spender out of a group and
        restarting freed what it had spent (a judge's finding)."""
        now = self.clock()
        for group in groups:
            if group.budget is None:
                continue
            key = (
                Subject("group", group.name, group.budget, group.max_parallel)
                .allowance(span_of(group.budget.period, now))
                .key
            )
            try:
                await self.state.spend_forget(key)
            except StateUnavailable as exc:
                log.warning("budgets: group %r spend not renewed after its members changed: %s", group.name, exc)

    # --- reading ----------------------------------------------------------------------

    async def spend(self, subjects: Sequence[Subject]) -> list[SpendEntry]:
        """The current spend of each subject with a budget (rebuilt first if the store
        lost it), for ``GET /api/consumers/NAME`` and ``/api/groups``. Raises
        ``GatewayError`` (503) when the store or the database cannot answer."""
        entries: list[SpendEntry] = []
        now = self.clock()
        for s in subjects:
            if s.budget is None:
                continue
            span = span_of(s.budget.period, now)
            key = s.allowance(span).key
            try:
                spent, _ = await self.state.spend_read(key)
            except StateUnavailable as exc:
                raise _unavailable(exc) from None
            if spent is None:
                await self._rebuild(s, span, key)
                spent, _ = await self.state.spend_read(key)
            entries.append(
                SpendEntry(
                    kind=s.kind,
                    name=s.name,
                    period=s.budget.period,
                    spend_usd=(spent or 0) / NANO,
                    budget_usd=s.budget.usd,
                    resets_at=span.resets_at,
                )
            )
        return entries

    async def consumer_spend(self, consumer: Consumer) -> list[SpendEntry]:
        """Every budget that applies to the consumer, its groups' included."""
        return await self.spend(self.subjects(consumer))


# Calls no provider bills, which need no model: reading, deleting, listing models,
# uploading files (a batch's lines are priced when a batch is made of them: not here),
# moderation, MCP; a stored response's cancel or input token count, and OpenAI's
# Conversations (the items a Responses call then continues: held with it).
_READS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
_FREE_APIS = frozenset({"models", "files", "moderations", "mcp"})
_FREE_PATHS = ("/responses/", "/conversations")
# APIs whose answers say nothing of what they cost.
_UNREAD_APIS = frozenset({"other", "batches"})
# APIs a call's model does not price: free whatever model they name, or unread.
_UNPRICED_APIS = _FREE_APIS | _UNREAD_APIS
# Making a batch: billed when the provider runs it, outside any call the gateway settles.
_BATCH_CREATION = frozenset({"/batches", "/messages/batches"})


# Gemini's own API calls a model's methods on the models API (``models/<m>:<method>``):
# those that carry a prompt are billed in the tokens their answers report
# (``usageMetadata``), priced by the model in the path, but for ``countTokens`` (free);
# any other (``predict``, a batch) is billed in ways the gateway cannot read.
_GEMINI_TOKEN_METHODS = GEMINI_PROMPT_METHODS - {"counttokens"}


def _gemini_method(ex: Exchange) -> str | None:
    """The method of a POST to Gemini's own API (lower case), or None for any other call."""
    if ex.api != "models" or ex.request.method != "POST":
        return None
    return gemini_method(ex.api_path)


def _priced_anyway(ex: Exchange) -> bool:
    """A call of an API no model prices (see above) that is billed in the tokens its
    answer reports all the same: Gemini's own model methods, a Responses compaction."""
    return _gemini_method(ex) in _GEMINI_TOKEN_METHODS or _compaction(ex)


def _compaction(ex: Exchange) -> bool:
    """A Responses compaction: a model call under ``/responses/`` (whose other paths are
    free), billed in the tokens its answer reports."""
    return ex.request.method == "POST" and ex.api_path.rstrip("/").lower() == RESPONSES_COMPACT


def _reads(ex: Exchange) -> bool:
    """A read (GET, DELETE, …) of the provider: no one bills it. A plugin's own provider
    call (chatgpt-proxy's: a POST, whatever method the client's request had) is none."""
    return ex.request.method in _READS and ex.upstream_call is None


def _costs_nothing(ex: Exchange) -> bool:
    """Whether a call is one no provider bills (see above), whatever model it names. Any other
    (an Assistants run, a batch, a fine-tuning job, an API the gateway does not know)
    cannot be priced, so a budget cannot hold it."""
    if _reads(ex):
        return True
    method = _gemini_method(ex)
    if method is not None:
        return method == "counttokens"
    if ex.api in _FREE_APIS:
        return True
    if _compaction(ex):
        return False
    path = ex.api_path.rstrip("/").lower()
    if ex.api == "batches":
        return path not in _BATCH_CREATION
    return path.startswith(_FREE_PATHS)


def _refuse_unreported(ex: Exchange, budgeted: Subject, billed: str, model: str) -> None:
    """Refuse an images or audio call whose answer may report no token usage, which a
    budget cannot settle (its record's ``cost_usd`` is null): a model billed per unit
    (``pricing.billed_per``), or a call ``_unreported`` says may be answered so."""
    who = f"{budgeted.kind} {budgeted.name!r} has a budget"
    unit = billed_per(billed) or billed_per(model)
    if unit is not None:
        raise Forbidden(
            f"model {billed!r} is billed per {unit}, which the price table (per million tokens) cannot price, "
            f"and {who}: a call it cannot price could spend past the budget",
            reason="budget.unpriced_model",
            code="model_unpriced",
        )
    why = _unreported(ex, model)
    if why is not None:
        raise Forbidden(f"{who}, and {why}", reason="budget.unpriced_model", code="model_unpriced")


# The media paths whose answers can report token usage, for the right model.
_TOKEN_MEDIA_PATHS = frozenset({"/audio/transcriptions", "/images/generations", "/images/edits"})
# Transcription formats answered as bare text, without usage.
_TEXT_TRANSCRIPTS = frozenset({"text", "srt", "vtt"})


def _unreported(ex: Exchange, model: str) -> str | None:
    """Why an images or audio call may be answered without token usage, or None when its
    answer reports it. Decided by the API, not by what a model's name suggests (a custom
    name or a provider's alias of a model billed per unit is priced per token under
    ``pricing:`` as readily as any other): speech reports usage only as events
    (``stream_format: "sse"``); transcriptions only from GPT-4o's transcription models
    and not as bare text; image generations and edits only from GPT Image models
    (``pricing.reports_media_tokens``; the model goes to the provider as the client named
    it); translations, image variations and any other media path never."""
    path = ex.api_path.rstrip("/").lower()
    if path == "/audio/speech":
        if _json_field(ex, "stream_format") == "sse":
            return None
        return (
            "speech answered as audio reports no token usage to bill it by: "
            'ask for stream_format: "sse", whose answer reports it'
        )
    if path not in _TOKEN_MEDIA_PATHS:
        return f"{ex.request.method} {ex.api_path} is answered without token usage to bill it by"
    if not reports_media_tokens(model):
        return (
            f"model {model!r} is not known to answer {ex.api_path} with its token usage (only GPT Image and "
            "GPT-4o transcribe models do), so the call could not be billed"
        )
    if path == "/audio/transcriptions" and _form_field(ex, "response_format") in _TEXT_TRANSCRIPTS:
        return "a transcription answered as text, srt or vtt reports no token usage to bill it by: ask for json"
    return None


def _json_field(ex: Exchange, name: str) -> object:
    try:
        body = ex.request.json()
    except BadRequest:
        return None
    return body.get(name) if isinstance(body, dict) else None


def _form_field(ex: Exchange, name: str) -> str | None:
    """A text field of a form body (``multipart/form-data``), or of a JSON one."""
    content_type = ex.request.headers.get("content-type") or ""
    if not content_type.startswith("multipart/"):
        value = _json_field(ex, name)
        return value if isinstance(value, str) else None
    body = ex.request.body or b""
    fields = form_fields(content_type, body, frozenset({name}), len(body))
    value = fields.get(name) if fields else None
    return value.decode("utf-8", "replace") if value is not None else None


def _spent(prices: PriceTable, ex: Exchange) -> int:
    """What the call cost in nano-dollars: its record's ``cost_usd``, which this pricing
    becomes (``Exchange.priced``), so the budget counts what the record says even when a
    reload changed the prices in between."""
    priced = ex.priced = call_cost(prices, ex.model_upstream, ex.usage, ex.cache, ex.api, ex.status)
    cost = priced[0]
    return to_nano(cost) if cost is not None else 0


def _over_budget(s: Subject, span: Span | None, spent: int, held: int, amount: int) -> Forbidden:
    assert s.budget is not None and span is not None
    period = "total budget" if s.budget.period == "total" else f"budget per {s.budget.period}"
    resets = f"it resets at {span.resets_at}" if span.resets_at is not None else "it does not reset"
    return Forbidden(
        f"{s.kind} {s.name!r} has spent its {period} of {_usd(round(s.budget.usd * NANO))} "
        f"({_usd(spent)} spent, {_usd(held)} held by calls in flight, this call may cost up to {_usd(amount)}); "
        f"{resets}",
        reason="budget.exceeded",
        code="budget_exceeded",
    )


def _unavailable(cause: object) -> GatewayError:
    # Money limits fail closed: a call whose spend cannot be checked is not made.
    return GatewayError(
        f"budgets cannot be checked now ({cause}); retry shortly",
        reason="budget.unavailable",
        status=503,
        code="service_unavailable",
        headers=[("retry-after", "1")],
    )


__all__ = ["DEFAULT_OUTPUT_TOKENS", "HOLD", "Budgets", "Hold", "Plan", "SpendEntry", "Subject"]
