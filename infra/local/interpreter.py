"""moto's Step Functions interpreter, fit for a request path: the same definition executed, less overhead.

moto 5.2.5 runs a state machine with LocalStack's ASL interpreter, which was written for correctness, not
latency. Profiling local access decisions (docs/performance.md, "Where the orchestration went") showed the
orchestration spent on work that does not depend on the execution:

* the whole definition lexed and parsed with ANTLR's pure-Python runtime at every StartExecution (about
  a third of the orchestration);
* ``copy.deepcopy`` of the whole state (the flow state, with its proof and attestations) at every JSONPath
  read and result write: generic deep copies of plain JSON data;
* every JSONPath expression compiled again (jsonpath-ng builds a PLY parser) at every evaluation;
* a new boto3 client (service model loaded, endpoint resolved) built for every Lambda task;
* the moto server listing its own package directory at every request, to route it.

``install_interpreter_speedups`` removes that overhead and nothing else: every execution still runs the
definition as created (each StartExecution evaluates the program parsed from that very text), every task
still reaches its function through moto's Lambda ``Invoke`` API over HTTP, and every state still copies
the data it reads and writes (so no state sees another's later changes). The patches replace private
parts of moto, which is pinned (5.2.5); tests/unit/test_local_interpreter.py pins each hook.

``ExecutionEvents`` lets a caller wait for an execution's end without polling DescribeExecution (which,
on two cores, takes the interpreter's turn at the GIL every 20 ms and adds half a period on average).
"""

from __future__ import annotations

import copy
import functools
import marshal
import os
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

PROGRAM_CACHE_SIZE = 16  # definitions kept parsed (a stack has one state machine; tests create a few)
_install_lock = threading.Lock()


def json_copy(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """A deep copy of JSON data (dicts, lists, strings, numbers, booleans, None) through ``marshal``, in C:
    several times faster than ``copy.deepcopy``, the same result. Anything marshal refuses (the
    interpreter's stack also holds its own objects) goes through ``copy.deepcopy``."""
    try:
        return marshal.loads(marshal.dumps(value))  # noqa: S302  (bytes it made itself, just now)
    except ValueError:  # an object marshal does not know (a class instance, an enum member, a subclass)
        return copy.deepcopy(value, memo)


# The interpreter's modules that copy state data (each imports ``copy`` and calls ``copy.deepcopy``).
_COPYING_MODULES = (
    "moto.stepfunctions.parser.asl.eval.states",
    "moto.stepfunctions.parser.asl.eval.environment",
    "moto.stepfunctions.parser.asl.eval.event.event_manager",
    "moto.stepfunctions.parser.asl.component.common.string.string_expression",
    "moto.stepfunctions.parser.asl.component.common.path.result_path",
    "moto.stepfunctions.parser.asl.component.state.exec.execute_state",
    "moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map",
)
_JSON_COPY = types.SimpleNamespace(deepcopy=json_copy, copy=copy.copy)


@functools.lru_cache(maxsize=PROGRAM_CACHE_SIZE)
def parsed_program(definition: str) -> Any:
    """The interpreter's program for ``definition``, parsed once per text.

    Sharing it between executions is what the interpreter already does between a Map's concurrent
    iterations: its components keep their per-execution state in the ``Environment`` they evaluate
    (``env.stack``, ``env.heap``: retry counters, results), never on themselves."""
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser  # noqa: PLC0415

    program, _tree = AmazonStateLanguageParser.parse(definition)
    return program


def install_interpreter_speedups() -> None:
    """Patch moto's interpreter and server (process-wide, idempotent); see the module's docstring."""
    from importlib import import_module  # noqa: PLC0415

    import moto.backends  # noqa: PLC0415
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import (  # noqa: PLC0415
        lambda_eval_utils,
    )
    from moto.stepfunctions.parser.asl.utils import json_path  # noqa: PLC0415
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker  # noqa: PLC0415

    with _install_lock:
        if getattr(ExecutionWorker._get_evaluation_entrypoint, "_reliquary_cached", False):
            return

        def _get_evaluation_entrypoint(self: Any) -> Any:
            return parsed_program(self._evaluation_details.state_machine_details.definition)

        _get_evaluation_entrypoint._reliquary_cached = True  # type: ignore[attr-defined]
        ExecutionWorker._get_evaluation_entrypoint = _get_evaluation_entrypoint  # type: ignore[method-assign]

        for name in _COPYING_MODULES:
            import_module(name).copy = _JSON_COPY  # type: ignore[attr-defined]

        # jsonpath-ng's expressions are immutable once compiled (``find`` only reads them).
        json_path.parse = functools.lru_cache(maxsize=1024)(json_path.parse)  # type: ignore[attr-defined]

        lambda_eval_utils.boto_client_for = _shared_clients(lambda_eval_utils.boto_client_for)  # type: ignore[attr-defined]

        # The package's directories do not change while the server runs.
        moto.backends.list_of_moto_modules = _listed_once(moto.backends.list_of_moto_modules)


def _shared_clients(build: Callable[..., Any]) -> Callable[..., Any]:
    """``boto_client_for`` with one client per (region, service): moto builds every client with the same
    fixed credentials and endpoint, whatever the state's credentials, and botocore clients are
    thread-safe (a Map's iterations invoke concurrently)."""
    clients: dict[tuple[str, str, int | None], Any] = {}
    lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        # The port is part of the key: a process may run one moto server after another (tests do).
        key = (region, service, _moto_port())
        with lock:
            if key not in clients:
                clients[key] = build(region=region, service=service, state_credentials=state_credentials)
            return clients[key]

    return boto_client_for


def _moto_port() -> int | None:
    port = os.environ.get("MOTO_PORT")
    return int(port) if port and port.isdigit() else None


def _listed_once(listing: Callable[[], Any]) -> Callable[[], tuple[str, ...]]:
    modules = tuple(listing())
    return lambda: modules


class ExecutionEvents:
    """Tells waiters when an execution ends, as the interpreter terminates it (no polling).

    ``install_execution_events()`` wraps moto's ``BaseExecutionWorkerCommunication.terminated``, called
    once the execution's status, output and stop date are set, to signal the execution's ARN. Only the
    ARNs someone watches are kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: dict[str, list[threading.Event]] = {}

    @contextmanager
    def watching(self, arn: str) -> Iterator[threading.Event]:
        """An event set when ``arn`` terminates from now on: watch first, then read the status (an
        execution that ended before is seen as ended there), then wait on the event."""
        ended = threading.Event()
        with self._lock:
            self._watched.setdefault(arn, []).append(ended)
        try:
            yield ended
        finally:
            with self._lock:
                watchers = self._watched.get(arn, [])
                watchers.remove(ended)
                if not watchers:
                    self._watched.pop(arn, None)

    def terminated(self, arn: str) -> None:
        with self._lock:
            watchers = list(self._watched.get(arn, []))
        for ended in watchers:
            ended.set()


EXECUTION_EVENTS = ExecutionEvents()


def install_execution_events() -> None:
    """Signal ``EXECUTION_EVENTS`` at every execution's end (process-wide, idempotent)."""
    from moto.stepfunctions.parser.backend.execution import (  # noqa: PLC0415
        BaseExecutionWorkerCommunication,
    )

    with _install_lock:
        original = BaseExecutionWorkerCommunication.terminated
        if getattr(original, "_reliquary_signals", False):
            return

        def terminated(self: Any) -> None:
            try:
                original(self)
            finally:
                EXECUTION_EVENTS.terminated(self.execution.exec_arn)

        terminated._reliquary_signals = True  # type: ignore[attr-defined]
        BaseExecutionWorkerCommunication.terminated = terminated  # type: ignore[method-assign]
