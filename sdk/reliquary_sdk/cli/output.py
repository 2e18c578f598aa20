"""What the command prints, and how it ends.

Human output goes to stdout through rich; with ``--json`` stdout holds exactly one JSON document (keys
sorted, so scripts and diffs see a stable shape) and nothing else. Progress bars and spinners go to
stderr, and only in human mode. Every failure ends as one line on stderr (or one JSON object with the
API's ``code``) and one of the documented exit codes; never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from reliquary_sdk import errors
from reliquary_sdk._verify import VerificationError
from reliquary_sdk.anchors import AnchorIntegrityError, SplitViewError
from reliquary_sdk.audit import CheckpointError, FalconUnavailableError, ProofError
from reliquary_sdk.chain import ChainError
from reliquary_sdk.crypto import InvalidGrantError
from reliquary_sdk.monitor import LogForkError
from reliquary_sdk.opening import NotApprovedError
from reliquary_sdk.prove import ProveError, ProverUnavailableError

EXIT_OK: Final = 0
EXIT_USAGE: Final = 1  # a bad option, argument, file or profile: nothing was sent
EXIT_REFUSED: Final = 2  # the API refused the request (a 4xx problem)
EXIT_VERIFICATION: Final = 3  # something did not verify: a checkpoint, a proof, a receipt, a fork
EXIT_UNAVAILABLE: Final = 4  # no answer, a 5xx/429, an unexpected answer, a missing tool
EXIT_INTERRUPTED: Final = 130

EXIT_CODES: Final = {
    EXIT_OK: "success",
    EXIT_USAGE: "usage: a bad option, argument, file or profile (nothing was sent)",
    EXIT_REFUSED: "the API refused the request",
    EXIT_VERIFICATION: "verification failed: a checkpoint, proof, receipt or grant, or the log forked",
    EXIT_UNAVAILABLE: "unavailable: no answer, a server error, rate limited, or a missing tool",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}


class CliError(Exception):
    """A failure the command explains itself: ``code`` for scripts, a message and a hint for people."""

    def __init__(
        self, message: str, *, code: str = "usage", exit_code: int = EXIT_USAGE, hint: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.exit_code = exit_code
        self.hint = hint


def usage(message: str, hint: str = "") -> CliError:
    return CliError(message, code="usage", exit_code=EXIT_USAGE, hint=hint)


_CREDENTIALS = "check the client id and secret (`reliquary profile list`, RELIQUARY_CLIENT_ID/SECRET)"
_HINTS: Final = {
    "unauthenticated": _CREDENTIALS,
    "invalid_client": _CREDENTIALS,
    "forbidden": "this client's roles do not allow it; use a profile with the right role",
    "not_found": "check the id (another tenant's objects are not found either)",
    "conflict": "it exists already, or its state refuses this",
    "idempotency_conflict": "a different request was sent under the same idempotency key",
    "rate_limited": "wait a moment and run it again",
    "transport": "is the API running at that URL? (`reliquary health`)",
    "timeout": "the API did not answer in time; try again",
    "transient": "the service is briefly unavailable; try again",
    "storage_unavailable": "the service is briefly unavailable; try again",
    "falcon_unavailable": "install the extra (pip install 'reliquary-sdk[falcon]') or pass --skip-falcon",
    "prover_unavailable": "needs Node.js 20+ and RELIQUARY's zk directory: --zk-dir or RELIQUARY_ZK_DIR",
    "not_approved": "the vault's policies decided so; the decision is logged (`reliquary audit verify`)",
    "log_fork": "the service showed this machine a log that contradicts one it showed before: report both",
    "split_view": "the service's log contradicts the checkpoint it anchored in public: report both",
    "anchor_unavailable": "the gateway did not serve the anchored checkpoint; try again or another gateway",
    "anchor_integrity": "the gateway served another body than the anchored one; try another gateway",
}


def classify(exc: BaseException) -> tuple[int, str, str, str]:  # noqa: PLR0911  (one per kind)
    """(exit code, code, message, hint) for a failure; the message never holds a secret."""
    if isinstance(exc, CliError):
        return exc.exit_code, exc.code, exc.message, exc.hint
    if isinstance(exc, LogForkError):
        return EXIT_VERIFICATION, exc.code, f"the log forked: {exc}", _HINTS["log_fork"]
    if isinstance(exc, (SplitViewError, AnchorIntegrityError)):
        what = "split view" if isinstance(exc, SplitViewError) else "the anchored checkpoint did not verify"
        return EXIT_VERIFICATION, exc.code, f"{what}: {exc}", _HINTS[exc.code]
    if isinstance(exc, NotApprovedError):
        why = "; ".join(exc.reasons) or "no reason given"
        return EXIT_REFUSED, exc.code, f"the access request was {exc.status}: {why}", _HINTS["not_approved"]
    if isinstance(exc, ProverUnavailableError):
        return EXIT_UNAVAILABLE, exc.code, str(exc), _HINTS["prover_unavailable"]
    if isinstance(exc, ProveError):
        return EXIT_UNAVAILABLE, exc.code, str(exc), ""
    if isinstance(exc, (CheckpointError, ProofError, ChainError, InvalidGrantError, VerificationError)):
        return EXIT_VERIFICATION, "verification_failed", f"verification failed: {exc}", ""
    if isinstance(exc, FalconUnavailableError):
        return EXIT_UNAVAILABLE, "falcon_unavailable", str(exc), _HINTS["falcon_unavailable"]
    if isinstance(exc, errors.ReliquaryError):
        unavailable = (
            isinstance(exc, (errors.ApiError, errors.TransientError, errors.RateLimitedError))
            or (exc.status or 0) >= 500
        )
        hint = _HINTS.get(exc.code, "")
        if exc.code == "forbidden" and isinstance(exc.details.get("scope"), str):
            hint = f"this client lacks the scope {exc.details['scope']}; use a profile with the right role"
        if exc.errors:
            where = ", ".join(str(e.get("location", "?")) for e in exc.errors[:5])
            hint = f"rejected: {where}" + (f"; {hint}" if hint else "")
        text = exc.detail or exc.title or exc.code
        return (EXIT_UNAVAILABLE if unavailable else EXIT_REFUSED), exc.code, text, hint
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return EXIT_USAGE, "file", f"{exc.strerror or type(exc).__name__}{where}", ""
    raise exc


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False)


class Output:
    """Where results, notes, progress and errors go, in human or JSON mode."""

    def __init__(self, *, json_mode: bool = False) -> None:
        self.json_mode = json_mode
        self.console = Console(highlight=False, soft_wrap=True)
        self.stderr = Console(stderr=True, highlight=False, soft_wrap=True)

    def result(self, value: Any, render: Callable[[Console], None] | None = None) -> None:
        """The command's answer: ``value`` as JSON, or ``render`` (default: the JSON) for people."""
        if self.json_mode:
            sys.stdout.write(_json(value) + "\n")
            sys.stdout.flush()
        elif render is not None:
            render(self.console)
        else:
            self.console.print_json(_json(value))

    def note(self, text: str) -> None:
        """A remark for people (stderr, never in JSON mode's stdout)."""
        if not self.json_mode:
            self.stderr.print(text)

    def warn(self, text: str) -> None:
        """A warning for people: stderr, also in JSON mode (scripts' logs should keep it)."""
        self.stderr.print(Text.assemble(("warning:", "yellow"), f" {text}"))

    @contextmanager
    def progress(self, description: str, total: float | None = None) -> Iterator[Callable[..., None]]:
        """A progress bar on stderr; yields ``advance(n=1, total=None, description=None)``."""
        if self.json_mode:
            yield lambda *_a, **_k: None
            return
        columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
        with Progress(*columns, TaskProgressColumn(), TimeElapsedColumn(), console=self.stderr) as bar:
            task = bar.add_task(description, total=total)

            def advance(n: float = 1, total: float | None = None, description: str | None = None) -> None:
                if total is not None:
                    bar.update(task, total=total)
                if description is not None:
                    bar.update(task, description=description)
                bar.advance(task, n)

            yield advance

    @contextmanager
    def spinner(self, text: str) -> Iterator[Callable[[str], None]]:
        """A spinner on stderr while something is waited for; yields ``update(text)``."""
        if self.json_mode:
            yield lambda _t: None
            return
        with self.stderr.status(text) as status:
            yield status.update

    def error(self, exc: BaseException) -> int:
        """Report ``exc`` (one line, or one JSON object on stderr); its exit code."""
        exit_code, code, message, hint = classify(exc)
        if self.json_mode:
            body: dict[str, Any] = {"code": code, "message": message, "exit_code": exit_code}
            if hint:
                body["hint"] = hint
            status = getattr(exc, "status", None)
            if isinstance(status, int):
                body["status"] = status
            request_id = getattr(exc, "request_id", None)
            if isinstance(request_id, str):
                body["request_id"] = request_id
            if isinstance(exc, LogForkError):
                body["fork"] = fork_evidence(exc)
            if isinstance(exc, SplitViewError):
                body["split_view"] = exc.evidence()
            if isinstance(exc, NotApprovedError):
                body["decision"], body["reasons"] = exc.status, list(exc.reasons)
            sys.stderr.write(json.dumps({"error": body}, sort_keys=True) + "\n")
            return exit_code
        if isinstance(exc, LogForkError):
            evidence = fork_evidence(exc)
            self.stderr.print(f"[bold]checkpoint remembered on this machine[/] (size {exc.known.size}):")
            self.stderr.print(evidence["known"], markup=False)
            self.stderr.print(f"[bold]checkpoint the service presents now[/] (size {exc.presented.size}):")
            self.stderr.print(evidence["presented"], markup=False)
        if isinstance(exc, SplitViewError):
            split = exc.evidence()
            self.stderr.print(f"[bold]checkpoint anchored in public[/] (size {exc.anchored.size}):")
            self.stderr.print(split["anchored"], markup=False)
            self.stderr.print(f"[bold]checkpoint the service presents[/] (size {exc.presented.size}):")
            self.stderr.print(split["presented"], markup=False)
        self.stderr.print(Text.assemble(("error", "red"), f" ({code}): {message}"))
        if hint:
            self.stderr.print(f"  hint: {hint}", markup=False)
        return exit_code


def fork_evidence(exc: LogForkError) -> dict[str, Any]:
    """Both signed checkpoints of a fork, as text: the evidence to report."""
    return {
        "reason": exc.reason,
        "origin": exc.origin,
        "known": exc.known_note.decode("utf-8", "replace"),
        "presented": exc.presented_note.decode("utf-8", "replace"),
    }


def dump(model: Any) -> Any:
    """A pydantic answer (or a list/dict of them) as JSON-ready data."""
    if hasattr(model, "model_dump"):
        return model.model_dump(mode="json")
    if isinstance(model, list):
        return [dump(m) for m in model]
    if isinstance(model, Mapping):
        return {k: dump(v) for k, v in model.items()}
    return model
