"""Recording one cassette: written aside, checked, stamped, and only then put in place.

vcrpy writes a recording to a part file beside its cassette (``.<name>.<pid>.recording``: not a
``.yaml`` name, so neither replay nor a glob of cassettes ever reads it). Only a test that
passed, whose recording holds no HTTP error reply the old cassette did not have, passes the
refuse-to-write scan and is stamped with its provenance replaces the old cassette, with one
``os.replace``. Anything else (a failed or interrupted test, a refused recording) leaves the old
cassette as it was; the part file is scrubbed once more and set aside outside the cassettes (under
``reports/_runs/recordings/`` by default) for inspection, and one line says so. A part file that a
killed run left behind is set aside the same way by the next recording of that cassette.

One process records a cassette at a time: the recording holds an exclusive lock on it (a lock
file in the temporary directory, keyed by the cassette's path) from start to replace.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from harness.contract.errors import HarnessError
from harness.recording.cassettes import SecretInCassetteError, finalize_recording

RECORD_MODES = ("all", "once")
PART_SUFFIX = ".recording"
ASIDE_ENV = "MODEL_CONFORMANCE_RECORDINGS_ASIDE"


def validate_record_mode(record_mode: str) -> str:
    if record_mode not in RECORD_MODES:
        raise HarnessError(f"{record_mode!r} is not a valid record mode. Valid record modes are: "
                           f"{', '.join(RECORD_MODES)}")
    return record_mode


def part_path(path: Path, pid: int | None = None) -> Path:
    """Where this process writes the recording of ``path`` before it is checked and stamped."""
    return path.with_name(f".{path.name}.{os.getpid() if pid is None else pid}{PART_SUFFIX}")


def leftover_parts(path: Path) -> list[Path]:
    """Part files of ``path`` left by other (killed or interrupted) runs."""
    mine = part_path(path)
    return sorted(p for p in path.parent.glob(f".{path.name}.*{PART_SUFFIX}") if p != mine)


def default_aside_root(rootdir: Path) -> Path:
    return Path(os.environ.get(ASIDE_ENV) or rootdir / "reports" / "_runs" / "recordings")


def _redacted(value: Any, extra: list[str]) -> Any:
    """``value`` with every string or bytes value that still holds a secret replaced by a note saying so."""
    from harness.contract.secrets import find_secret, find_secret_bytes

    if isinstance(value, dict):
        return {k: _redacted(v, extra) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, extra) for v in value]
    found = find_secret_bytes(value, extra) if isinstance(value, bytes) else \
        find_secret(value, extra) if isinstance(value, str) else None
    return f"REDACTED (held {found})" if found else value


def set_aside(part: Path, path: Path, aside_root: Path, extra_secrets: list[str | None]) -> Path | None:
    """Move a recording that will not be kept out of the cassettes, scrubbed; None if it cannot be made clean.

    The scrubbers run once more (with the key the recording used); a value they cannot clean (a
    secret inside a base64 body, say) is replaced whole by a note naming what it held.
    """
    import yaml

    from harness.contract.secrets import scrub_text
    from harness.recording.cassettes import dump_cassette
    from harness.recording.scan import scan_text

    extra = [v for v in extra_secrets if v and v != "replay-key"]
    text = scrub_text(part.read_text(encoding="utf-8", errors="replace"), extra)
    part.unlink()
    if scan_text(text, path.name, extra):
        try:
            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError:
            return None  # cut short mid-write and still holding a secret: nothing is kept
        text = dump_cassette(_redacted(data, extra)) if isinstance(data, dict) else text
        if scan_text(text, path.name, extra):
            return None
    # <aside>/<server>/<backend>/<suite>/<test>.<pid>.yaml, as the cassette's own place
    suite, backend, server = path.parent, path.parent.parent, path.parent.parent.parent
    where = aside_root / server.name / backend.name / suite.name / f"{path.stem}.{os.getpid()}.yaml"
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_text(text, encoding="utf-8")
    return where


def _error_statuses(interactions: Any) -> list[int]:
    codes = []
    for interaction in interactions or []:
        status = ((interaction or {}).get("response") or {}).get("status") or {}
        code = status.get("code") if isinstance(status, Mapping) else None
        if isinstance(code, int) and code >= 400:
            codes.append(code)
    return codes


def new_error_replies(part: Path, old: Path) -> str | None:
    """What the new recording answered with HTTP errors that the old cassette did not (None if nothing)."""
    from harness.recording.cassettes import load_yaml

    try:
        new_codes = _error_statuses((load_yaml(part) or {}).get("interactions"))
    except Exception:  # noqa: BLE001 - an unreadable recording is refused by the stamp step
        return None
    if not new_codes or not old.exists():
        return None
    try:
        old_codes = set(_error_statuses((load_yaml(old) or {}).get("interactions")))
    except Exception:  # noqa: BLE001 - an unreadable old cassette is no reason to keep it
        return None
    fresh = [c for c in new_codes if c not in old_codes]
    if not fresh:
        return None
    shown = ", ".join(str(c) for c in sorted(set(fresh)))
    return f"the new recording holds {len(fresh)} HTTP error repl{'y' if len(fresh) == 1 else 'ies'} ({shown}) " \
           "the old cassette does not"


def stamp_cassettes(paths: list[Path], check: bool = False) -> list[tuple[Path, str]]:
    """Write the content digest into the provenance of every cassette (``*.yaml``) under ``paths``.

    Returns (path, what happened): ``stamped``, ``up to date``, ``unstamped`` (with ``check``: nothing
    is written), or ``refused (...)`` for a file that is no finished recording: unreadable, without
    provenance, or holding a secret. Only the digest changes; the rest of the file is written as it was.
    """
    import yaml

    from harness.recording.cassettes import content_digest, dump_cassette
    from harness.recording.scan import scan_text

    outcomes: list[tuple[Path, str]] = []
    files: list[Path] = []
    for root in paths:
        if not root.exists():
            outcomes.append((root, "refused (no such file or directory)"))
        files += sorted(root.rglob("*.yaml")) if root.is_dir() else [root] if root.exists() else []
    for file in files:
        text = file.read_text(encoding="utf-8")
        try:
            data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.YAMLError as exc:
            outcomes.append((file, f"refused (not valid YAML: {str(exc).splitlines()[0]})"))
            continue
        if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
            outcomes.append((file, "refused (not a cassette: no interactions)"))
            continue
        prov = data.get("provenance")
        if not isinstance(prov, dict) or not prov:
            outcomes.append((file, "refused (no provenance: a recording that did not finish; re-record it)"))
            continue
        found = scan_text(text, file.name)
        if found:
            outcomes.append((file, f"refused (line {found[0][0]} holds {found[0][1]}; re-record it)"))
            continue
        digest = content_digest(data["interactions"])
        if prov.get("content_digest") == digest:
            outcomes.append((file, "up to date"))
        elif check:
            outcomes.append((file, "unstamped"))
        else:
            prov["content_digest"] = digest
            tmp = file.with_name(f".{file.name}.{os.getpid()}.stamping")
            tmp.write_text(dump_cassette(data), encoding="utf-8")
            os.replace(tmp, file)
            outcomes.append((file, "stamped"))
    return outcomes


@dataclass
class Recording:
    """The recording of one cassette by one test."""

    path: Path
    provenance: Mapping[str, Any]
    aside_root: Path
    api_key: str | None = None
    notes: list[str] = field(default_factory=list)
    _lock: IO[str] | None = None

    @property
    def part(self) -> Path:
        return part_path(self.path)

    def start(self) -> None:
        """Take the cassette's lock, set aside what killed runs left, and start an empty part file."""
        lock_dir = Path(tempfile.gettempdir()) / "model-conformance-locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        key = hashlib.sha256(str(self.path.resolve()).encode("utf-8")).hexdigest()[:32]
        self._lock = open(lock_dir / f"{key}.lock", "w")  # noqa: SIM115 - held until finish()
        fcntl.flock(self._lock, fcntl.LOCK_EX)  # another worker recording this cassette finishes first
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for leftover in leftover_parts(self.path):  # the lock is ours: no live run writes these
            aside = set_aside(leftover, self.path, self.aside_root, [self.api_key])
            kept = f"set aside, scrubbed, at {aside}" if aside else "removed (it could not be made clean)"
            self.notes.append(f"{self.path}: an interrupted run's unfinished recording ({leftover.name}) never "
                              f"touched it and was {kept}")
        self.part.unlink(missing_ok=True)

    def finish(self, outcome: str) -> str | None:
        """Replace the cassette if ``outcome`` is 'passed' and the recording is clean; else one line saying why not."""
        try:
            return self._finish(outcome)
        finally:
            if self._lock is not None:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
                self._lock.close()
                self._lock = None

    def _finish(self, outcome: str) -> str | None:
        part, path = self.part, self.path
        old = "left untouched" if path.exists() else "not written"
        if not part.exists():
            if outcome == "passed":
                return None  # nothing was sent (a check before the network): nothing to record
            return f"recording not kept: {path} {old} (the test {outcome}; nothing was recorded)"
        reason = None if outcome == "passed" else f"the test {outcome}"
        reason = reason or new_error_replies(part, path)
        if reason is None:
            recorded = part.read_text(encoding="utf-8", errors="replace")
            try:
                finalize_recording(part, self.provenance, self.api_key, destination=path)
                return None
            except SecretInCassetteError as exc:
                part.write_text(recorded, encoding="utf-8")  # refused, so set aside scrubbed below
                reason = str(exc).replace(f"refused to write {path}: ", "refused: ")
        aside = set_aside(part, path, self.aside_root, [self.api_key])
        kept = f"the failed recording, scrubbed, is at {aside}" if aside else \
            "the failed recording could not be made clean and was removed"
        return f"recording not kept: {path} {old} ({reason}); {kept}"


__all__ = ["PART_SUFFIX", "RECORD_MODES", "Recording", "default_aside_root", "leftover_parts", "part_path",
           "set_aside", "stamp_cassettes", "validate_record_mode"]
