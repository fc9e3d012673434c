"""The core's tracing engine: observations as Langfuse OTel spans, batched to an exporter.

Why not the Langfuse SDK's own span machinery: every SDK observation is a full OTel span
(context objects, processors, a batch queue, a protobuf re-encoding per export) and the SDK
drops data it fails to send. The core records the same Langfuse attributes (the SDK's own
names) into a plain ``SpanRecord`` and hands whole batches to an exporter:
the local store, Langfuse over OTLP/HTTP, or nowhere. ``benchmarks/tracing_overhead.py``
measures both.

Sampling is decided once per trace at its root; an unsampled trace still hands out
observation objects (so callers never branch), but they record nothing.
"""

from __future__ import annotations

import enum
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from config.redaction import core_logger, redact_secrets
from config.sampling_rules import SamplingSubject
from config.tracing import attributes as la
from config.tracing.ids import random_trace_id, span_id_for, trace_id_for, usable_trace_id
from config.tracing.sampling import TraceSampler
from config.tracing.span_records import (
    STATUS_ERROR,
    STATUS_UNSET,
    ScoreRecord,
    SpanExporter,
    SpanRecord,
)

logger = core_logger("autoops.tracing")

_UNSET: Any = object()
SCORE_DATA_TYPES = frozenset({"NUMERIC", "CATEGORICAL", "BOOLEAN"})


def _text(value: Any) -> str:
    """A name, level or message as text: the store binds text only, and one such value (an
    enum, a list) stopped its writes. Text stays as it is (a ``str`` enum is its value), an
    enum of text is its value, anything else its ``str()``."""
    if isinstance(value, str):
        return value
    if isinstance(value, enum.Enum) and isinstance(value.value, str):
        return value.value
    return str(value)


SEQUENCE_ATTRIBUTE = la.OBSERVATION_SEQUENCE


class _Made(NamedTuple):
    """What a thread or task made current, and what was current there before it: the chain
    ``Tracer.current`` walks back when an observation has ended."""

    observation: Observation
    before: _Made | None


_current: ContextVar[_Made | None] = ContextVar("autoops_observation", default=None)
# What ``Tracer.set_current`` returns, for ``Tracer.reset_current``.
CurrentToken = Token[_Made | None]


@dataclass
class TracerStats:
    """Counters of one tracer."""

    traces_started: int = 0
    traces_sampled_out: int = 0
    observations_recorded: int = 0
    scores_recorded: int = 0
    batches_exported: int = 0


class TraceState:
    """What all observations of one trace share."""

    __slots__ = (
        "counted",
        "next_sequence",
        "propagated",
        "sampled",
        "session_id",
        "trace_id",
        "tracer",
    )

    def __init__(
        self,
        tracer: Tracer,
        trace_id: str,
        sampled: bool,
        session_id: str | None,
        propagated: dict[str, Any],
        counted: bool = True,
    ) -> None:
        self.tracer = tracer
        self.trace_id = trace_id
        # False for a trace started after shutdown(): neither recorded nor counted, as
        # started or as finalized.
        self.counted = counted
        self.sampled = sampled
        self.session_id = session_id
        self.propagated = propagated
        self.next_sequence = 0

    def new_span_id(self) -> str:
        """The next stable span id of this trace."""
        self.next_sequence += 1
        return span_id_for(self.trace_id, self.next_sequence)


class Observation:
    """A live observation; ``end()`` turns it into a ``SpanRecord``."""

    __slots__ = (
        "agent_id",
        "as_type",
        "attributes",
        "ended",
        "level",
        "name",
        "parent",
        "parent_id",
        "scored",
        "span_id",
        "start_ns",
        "status_message",
        "trace",
    )

    def __init__(
        self,
        trace: TraceState,
        name: str,
        as_type: str,
        parent_id: str | None,
        attributes: dict[str, Any],
    ) -> None:
        self.trace = trace
        # Masked as any text (a name made from data held a secret key or an e-mail, stored
        # and sent whole while the same text in the input was masked).
        self.name = trace.tracer.mask_name(_text(name))
        self.as_type = as_type
        self.parent_id = parent_id
        self.span_id = trace.new_span_id()
        self.start_ns = time.time_ns()
        self.attributes = attributes
        self.level: str | None = None
        self.status_message: str | None = None
        self.ended = False
        # Score name -> when each score of that name was made (how many: their ids; when:
        # the conflict scores of its decisions are dated alike).
        self.scored: dict[str, list[int]] | None = None
        # The parent itself: when it has ended, the current observation is its nearest
        # open ancestor (``Tracer.current``).
        self.parent: Observation | None = None
        # The agent whose operation this observation is part of (inherited from the parent),
        # so a tool call can be named and counted per agent.
        self.agent_id: str | None = None

    @property
    def trace_id(self) -> str:
        """The 32-hex id of the trace."""
        return self.trace.trace_id

    @property
    def recording(self) -> bool:
        """False when the trace was sampled out: updates are then ignored."""
        return self.trace.sampled

    def update(
        self,
        *,
        input: Any = _UNSET,
        output: Any = _UNSET,
        metadata: Mapping[str, Any] | None = None,
        level: str | None = None,
        status_message: str | None = None,
    ) -> None:
        """Set input, output, metadata (merged), level or status message."""
        if not self.trace.sampled or self.ended:
            return
        mask = self.trace.tracer.mask
        if input is not _UNSET:
            self.attributes[la.OBSERVATION_INPUT] = la.serialize_io(mask(input))
        if output is not _UNSET:
            self.attributes[la.OBSERVATION_OUTPUT] = la.serialize_io(mask(output))
        if metadata:
            self.attributes.update(
                la.metadata_attributes(mask(dict(metadata)), la.OBSERVATION_METADATA_PREFIX)
            )
        if level is not None:
            self.level = _text(level)
        if status_message is not None:
            # Mostly an exception's text, which may quote the keys it was given.
            self.status_message = redact_secrets(_text(mask(_text(status_message))))

    def update_trace_metadata(self, metadata: Mapping[str, Any]) -> None:
        """Add keys to the metadata of the trace (carried by this observation, the root)."""
        if self.trace.sampled and not self.ended:
            masked = self.trace.tracer.mask(dict(metadata))
            self.attributes.update(la.metadata_attributes(masked, la.TRACE_METADATA_PREFIX))

    def end(
        self,
        *,
        output: Any = _UNSET,
        level: str | None = None,
        status_message: str | None = None,
    ) -> None:
        """Finish the observation (idempotent)."""
        if self.ended:
            return
        self.update(output=output, level=level, status_message=status_message)
        self.ended = True
        if self.trace.sampled:
            self.trace.tracer._finish(self, time.time_ns())

    def event(
        self,
        name: str,
        *,
        input: Any = _UNSET,
        output: Any = _UNSET,
        metadata: Mapping[str, Any] | None = None,
        level: str | None = None,
        status_message: str | None = None,
    ) -> Observation:
        """Record a zero-duration ``event`` observation under this one."""
        child = self.trace.tracer.start_observation(
            name, as_type="event", parent=self, input=input, metadata=metadata
        )
        child.end(output=output, level=level, status_message=status_message)
        return child

    def score(
        self,
        name: str,
        value: float | str,
        *,
        comment: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        data_type: str = "NUMERIC",
        timestamp_ns: int | None = None,
    ) -> None:
        """Attach a score to this observation (and its trace); ``timestamp_ns``: when it
        was made (default now)."""
        if self.trace.sampled:
            self.trace.tracer._score(
                self, name, value, comment, metadata, data_type, timestamp_ns or time.time_ns()
            )


def _score_value(name: str, value: Any, data_type: str) -> float | str:
    """``value`` as Langfuse takes it for ``data_type``, or ValueError/TypeError saying why.

    Langfuse refuses the whole batch for a NaN (400) and the score for a value of the wrong
    type (207): the valid scores sent with it were lost, and the local store, which took
    them, disagreed with Langfuse. An int past the float range stopped the store's writes.
    """
    if data_type == "CATEGORICAL":
        if not isinstance(value, str):
            raise TypeError(
                f"score {name!r}: a CATEGORICAL score's value is a string, "
                f"got {type(value).__name__}"
            )
        return _text(value)
    if isinstance(value, bool):  # a BOOLEAN score's value is 1 or 0 in Langfuse
        value = float(value)
    if not isinstance(value, int | float):
        raise TypeError(
            f"score {name!r}: a {data_type} score's value is a number, got {type(value).__name__}"
        )
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"score {name!r}: its value is not a finite number")
    if data_type == "BOOLEAN" and number not in (0.0, 1.0):
        raise ValueError(f"score {name!r}: a BOOLEAN score's value is 0 or 1, got {value!r}")
    return value


# The first part of the names the core makes from data (``simulation.<event type>``, ...).
SCHEMA_PREFIXES: Final = frozenset(
    {"simulation", "collaboration", "coordination", "conflict", "conflict_resolution"}
)


class Tracer:
    """Creates observations, batches finished ones, and hands batches to the exporter."""

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        sampler: TraceSampler | None = None,
        mask: Callable[[Any], Any] | None = None,
        environment: str = "default",
        release: str | None = None,
        batch_size: int = 512,
        flush_interval: float = 5.0,
        resource: dict[str, Any] | None = None,
    ) -> None:
        self.exporter = exporter
        # The OTel resource of every span (service, environment, release): shared, not copied.
        self.resource = resource or {}
        self.sampler = sampler or TraceSampler(1.0)
        self.mask: Callable[[Any], Any] = mask or _identity
        self.environment = environment
        self.release = release
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.stats = TracerStats()
        self._spans: list[SpanRecord] = []
        self._scores: list[ScoreRecord] = []
        self._lock = threading.Lock()
        # Taking a batch and handing it over happen under one lock, so batches reach the
        # exporter in the order they were taken and a commit's ticket covers every earlier
        # record. The exporter may make the caller wait (backpressure): only exporting
        # threads wait here, recording threads only need ``_lock``.
        self._export_lock = threading.Lock()
        self._last_export = time.monotonic()
        # What was recorded is handed over within ``flush_interval`` also when nothing new
        # is recorded after it: an application's last traces must not wait in memory for
        # the next one (or die with the process). A batch filling up is handed over at once.
        self._stopped = threading.Event()
        self._released = False  # shutdown() released the exporter: nothing more is recorded
        self._told_shut = False
        self._start_flush_thread()
        _TRACERS.add(self)

    def _start_flush_thread(self) -> None:
        if self.flush_interval > 0 and not self._stopped.is_set():
            threading.Thread(
                target=_flush_periodically,
                args=(weakref.ref(self), self._stopped, self.flush_interval),
                name="autoops-tracer-flush",
                daemon=True,
            ).start()

    # --- starting observations ----------------------------------------------------------

    def start_trace(
        self,
        name: str,
        *,
        root_name: str,
        root_type: str = "chain",
        trace_id: str | None = None,
        session_id: str | None = None,
        user_id: str | None = None,
        tags: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
        input: Any = _UNSET,
        root_metadata: Mapping[str, Any] | None = None,
        subject: SamplingSubject | None = None,
    ) -> Observation:
        """Start a trace and its root observation (not made current; see ``use``).

        ``subject`` (event type, severity, routed agents) is what the sampling rules match;
        the decision is made here, once, for the whole trace.
        """
        if trace_id is None:
            trace_id = random_trace_id()
        else:
            given, trace_id = trace_id, usable_trace_id(trace_id)
            if trace_id != given and trace_id != str(given).lower():
                logger.warning(
                    "trace id %r is not 32 hex characters (not all zero): recorded as %s",
                    given,
                    trace_id,
                )
        if self._released:
            # After shutdown(): nowhere to record it (see export_pending). Not counted: no
            # sampler dropped it, and the sample rate's figures are of the run before.
            self._after_shutdown("a trace started")
            return Observation(
                TraceState(self, trace_id, False, session_id, {}, counted=False),
                root_name,
                root_type,
                None,
                {},
            )
        sampled = self.sampler.keep(trace_id, subject)
        self.stats.traces_started += 1
        if not sampled:
            self.stats.traces_sampled_out += 1
            return Observation(
                TraceState(self, trace_id, False, session_id, {}), root_name, root_type, None, {}
            )
        propagated: dict[str, Any] = {
            la.TRACE_NAME: self.mask_name(_text(name)),
            la.ENVIRONMENT: self.environment,
        }
        # Ids keep their value (a masked session or user would no longer group anything) but
        # never carry a secret; tags are labels made from the data (an event's trigger
        # source, its severity), masked as the data is.
        if session_id:
            propagated[la.TRACE_SESSION_ID] = redact_secrets(_text(session_id))
        if user_id:
            propagated[la.TRACE_USER_ID] = redact_secrets(_text(user_id))
        if tags:
            masked = self.mask(list(tags))
            propagated[la.TRACE_TAGS] = [
                redact_secrets(_text(tag)) for tag in (masked if type(masked) is list else [masked])
            ]
        if self.release:
            propagated[la.RELEASE] = self.release
        state = TraceState(self, trace_id, True, session_id, propagated)
        root = self.start_observation(
            root_name,
            as_type=root_type,
            parent=None,
            trace=state,
            input=input,
            metadata=root_metadata,
        )
        if metadata:
            root.update_trace_metadata(metadata)
        return root

    def start_observation(
        self,
        name: str,
        *,
        as_type: str = "span",
        parent: Observation | None = None,
        trace: TraceState | None = None,
        input: Any = _UNSET,
        metadata: Mapping[str, Any] | None = None,
    ) -> Observation:
        """Start an observation under ``parent`` (default: the current observation)."""
        if trace is None:
            parent = parent if parent is not None else Tracer.current()
            if parent is None:
                raise RuntimeError(f"observation {name!r} started outside any trace")
            trace = parent.trace
        if not trace.sampled:
            observation = Observation(trace, name, as_type, None, {})
            observation.parent = parent
            observation.agent_id = parent.agent_id if parent else None
            return observation
        attributes = {**trace.propagated, la.OBSERVATION_TYPE: as_type}
        observation = Observation(
            trace, name, as_type, parent.span_id if parent else None, attributes
        )
        # Its place among the trace's observations: what orders those that share a start
        # time (Langfuse keeps milliseconds; a conflict and its resolution often share one).
        attributes[SEQUENCE_ATTRIBUTE] = str(trace.next_sequence)
        observation.parent = parent
        observation.agent_id = parent.agent_id if parent else None
        if input is not _UNSET or metadata:
            observation.update(input=input, metadata=metadata)
        return observation

    @contextmanager
    def use(self, observation: Observation) -> Iterator[Observation]:
        """Make ``observation`` current inside the block (nesting follows it)."""
        token = self.set_current(observation)
        try:
            yield observation
        finally:
            _current.reset(token)

    @contextmanager
    def observe(
        self,
        name: str,
        *,
        as_type: str = "span",
        input: Any = _UNSET,
        metadata: Mapping[str, Any] | None = None,
    ) -> Iterator[Observation]:
        """Start an observation under the current one, make it current, end it on exit.

        An exception in the block marks the observation ERROR with the exception's message,
        then propagates unchanged.
        """
        observation = self.start_observation(name, as_type=as_type, input=input, metadata=metadata)
        token = self.set_current(observation)
        try:
            yield observation
        except BaseException as exc:
            observation.end(level="ERROR", status_message=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            _current.reset(token)
            observation.end()

    @staticmethod
    def current() -> Observation | None:
        """The current observation of this thread or task, if any: the latest one it made
        current that is still open (one ended out of order, or by another thread, is no
        parent any more). Walked back through what this thread or task made current, not
        through parents: a pool thread whose agent span the orchestrator ended found that
        span's trace root, which it had never entered, and nested the next event's tool
        calls in the earlier trace."""
        made = _current.get()
        while made is not None and made.observation.ended:
            made = made.before
        return made.observation if made is not None else None

    @staticmethod
    def made_current() -> Observation | None:
        """What this thread or task last made current, ended or not."""
        made = _current.get()
        return made.observation if made is not None else None

    @staticmethod
    def set_current(observation: Observation | None) -> CurrentToken:
        """Make ``observation`` current until the returned token is reset (None: nothing)."""
        if observation is None:
            return _current.set(None)
        before = _current.get()
        while before is not None and before.observation.ended:  # no chain of ended ones
            before = before.before
        return _current.set(_Made(observation, before))

    @staticmethod
    def reset_current(token: CurrentToken) -> None:
        """Undo ``set_current``: the observation current before it is current again.

        A generator that traces a block may be resumed in another context than the one it
        started in (advanced from several asyncio tasks, or ``copy_context().run``): the
        token cannot be reset there (``ValueError`` into the application's code), so the
        value it replaced is set instead.
        """
        try:
            _current.reset(token)
        except ValueError:
            old = token.old_value
            _current.set(None if old is Token.MISSING else old)

    # --- finishing, batching, exporting -------------------------------------------------

    def _finish(self, observation: Observation, end_ns: int) -> None:
        attributes = observation.attributes
        level = observation.level
        status = STATUS_ERROR if level == "ERROR" else STATUS_UNSET
        if level is not None:
            attributes[la.OBSERVATION_LEVEL] = level
        if observation.status_message is not None:
            attributes[la.OBSERVATION_STATUS_MESSAGE] = observation.status_message
        record = SpanRecord(
            trace_id=observation.trace.trace_id,
            span_id=observation.span_id,
            parent_span_id=observation.parent_id,
            name=observation.name,
            start_ns=observation.start_ns,
            end_ns=max(end_ns, observation.start_ns),
            attributes=attributes,
            status_code=status,
            status_message=observation.status_message if status == STATUS_ERROR else None,
            resource=self.resource,
            trusted_json=True,
        )
        with self._lock:
            self._spans.append(record)
            self.stats.observations_recorded += 1
            due = len(self._spans) >= self.batch_size or (
                time.monotonic() - self._last_export >= self.flush_interval
            )
        if due:
            self.export_pending()

    def _score(
        self,
        observation: Observation,
        name: str,
        value: float | str,
        comment: str | None,
        metadata: Mapping[str, Any] | None,
        data_type: str,
        timestamp_ns: int,
    ) -> None:
        # What the store and Langfuse take (a list as the value stopped the store's writes).
        if not isinstance(name, str | enum.Enum):
            raise TypeError(f"a score's name is a string, got {type(name).__name__}")
        name = self.mask_name(_text(name))
        if not name.strip():
            raise ValueError("a score's name is empty")
        if data_type not in SCORE_DATA_TYPES:
            raise ValueError(
                f"score {name!r}: data type {data_type!r} is not one of NUMERIC, "
                "CATEGORICAL, BOOLEAN"
            )
        value = _score_value(name, value, data_type)
        if isinstance(value, str):  # a category is free text: a secret or an e-mail in it
            value = self.mask(value)  # was written whole
        if comment:  # masked as the value it is (a dict's keys count), then written as text
            comment = self.mask(comment)
            if type(comment) is not str:  # a dict or list: written as its JSON
                comment = la.to_json(comment)
        with self._lock:
            scored = observation.scored = observation.scored or {}
            made = scored.setdefault(name, [])
            made.append(timestamp_ns)
            number = len(made)
        # Stable per observation, name and number: a score re-sent (the same replay again)
        # is stored once, and a second of one name on an observation (two decisions in one
        # operation) is one more, not the first written over while both were counted.
        parts = (observation.trace.trace_id, observation.span_id, name)
        score = ScoreRecord(
            # (A leading part no trace id can be: no name can give another's id.)
            id=trace_id_for(*parts) if number == 1 else trace_id_for("nth", *parts, str(number)),
            trace_id=observation.trace.trace_id,
            observation_id=observation.span_id,
            name=name,
            value=value,
            timestamp_ns=timestamp_ns,
            data_type=data_type,
            comment=comment or None,
            environment=self.environment,
            # NaN as "nan", as the store writes it: sent as NaN, Langfuse refused the batch
            # (400) and with it every score sent along.
            metadata=la.nonfinite_as_text(self.mask(dict(metadata))) if metadata else None,
        )
        with self._lock:
            self._scores.append(score)
            self.stats.scores_recorded += 1

    def export_pending(self) -> None:
        """Hand what is batched to the exporter now."""
        with self._export_lock:
            with self._lock:
                spans, scores = self._spans, self._scores
                self._spans, self._scores = [], []
                self._last_export = time.monotonic()
            if (spans or scores) and self._released:
                # Finished by another thread after shutdown() released the exporter: handed
                # over, they failed as a closed store ("tracing keeps nothing more").
                self._after_shutdown(f"{len(spans)} span(s) and {len(scores)} score(s)")
            elif spans or scores:
                logger.debug("handing over %d span(s) and %d score(s)", len(spans), len(scores))
                self.exporter.export(spans, scores)
                self.stats.batches_exported += 1

    def _after_shutdown(self, what: str) -> None:
        """What comes after ``shutdown()`` is not recorded: said once, as a warning."""
        if not self._told_shut:
            self._told_shut = True
            logger.warning("tracing was shut down: %s after it not recorded", what)

    def commit(self) -> int:
        """Hand over everything recorded so far; the ticket ``committed()`` reaches once it
        is durable (written to the local store or the outbox file).

        A commit point: what was recorded before it can be reported as kept as soon as
        ``committed() >= ticket``.
        """
        self.export_pending()
        exported = getattr(self.exporter, "exported_batches", None)
        return int(exported()) if callable(exported) else self.stats.batches_exported

    def committed(self) -> int:
        """The highest ticket that is durable, with every earlier one (see ``commit``).

        An exporter without a watermark of its own is taken as synchronous.
        """
        committed = getattr(self.exporter, "committed_batches", None)
        return int(committed()) if callable(committed) else self.stats.batches_exported

    def mask_name(self, name: str) -> str:
        """A name of a trace, observation or score, masked as text is; the schema's prefix
        (``simulation.``, ``conflict.``, ...) kept before a masked rest (an e-mail took
        ``conflict.`` with it, and ``autoops metrics``, which counts by those prefixes, lost
        the conflict). Any other name is masked whole: what comes before its first dot may
        be part of what is masked (``john.doe@example.com``)."""
        masked = self.mask(name)
        if masked == name:
            return name
        head, dot, rest = name.partition(".")
        if dot and head in SCHEMA_PREFIXES:
            return f"{head}.{self.mask(rest)}"
        return str(masked)

    def flush(self, timeout: float = 5.0) -> bool:
        """Export what is batched and deliver it, waiting while delivery makes progress
        (``timeout`` s without progress ends the wait; the outbox keeps the rest)."""
        self.export_pending()
        return self.exporter.flush(timeout)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flush (as ``flush``) and release the exporter."""
        self._stopped.set()
        self.export_pending()
        with self._export_lock:  # a hand-over under way ends first
            self._released = True
        self.exporter.shutdown(timeout)

    def _hand_over_if_due(self) -> None:
        """Hand over what is batched if it has waited ``flush_interval`` seconds."""
        with self._lock:
            due = (self._spans or self._scores) and (
                time.monotonic() - self._last_export >= self.flush_interval
            )
        if due:
            self.export_pending()


# Every live tracer, for the fork hooks below.
_TRACERS: weakref.WeakSet[Tracer] = weakref.WeakSet()
_HELD_OVER_FORK: list[Tracer] = []


def _before_fork() -> None:
    # No hand-over may be half done in a child (its flush thread does not follow it there,
    # and a lock held by that thread would never be released): wait for any to finish.
    _HELD_OVER_FORK[:] = list(_TRACERS)
    for tracer in _HELD_OVER_FORK:
        tracer._export_lock.acquire()


def _after_fork_in_parent() -> None:
    for tracer in _HELD_OVER_FORK:
        tracer._export_lock.release()
    _HELD_OVER_FORK.clear()


def _after_fork_in_child() -> None:
    for tracer in _HELD_OVER_FORK:
        tracer._export_lock.release()
        # What was recorded before the fork is the parent's to hand over (sent by both, it
        # was stored once, but counted twice).
        tracer._spans, tracer._scores = [], []
        tracer._start_flush_thread()  # threads do not survive a fork
    _HELD_OVER_FORK.clear()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


def _flush_periodically(
    tracer_ref: weakref.ref[Tracer], stopped: threading.Event, interval: float
) -> None:
    """The tracer's flush thread: it holds the tracer weakly, so a tracer nobody shuts down
    is still collected (and its thread ends)."""
    # Twice per interval: a batch waits at most 1.5 intervals, whatever the phase (and the
    # thread wakes at most 20 times a second, however small the interval).
    while not stopped.wait(max(interval / 2, 0.05)):
        tracer = tracer_ref()
        if tracer is None:
            return
        try:
            tracer._hand_over_if_due()
        except Exception as exc:  # an exporter's own failure; the next call will meet it too
            logger.warning("handing over traced data failed: %s: %s", type(exc).__name__, exc)
        del tracer


def _identity(value: Any) -> Any:
    return value
