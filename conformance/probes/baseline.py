"""The regression baseline: a previous result document's task scores, read by a probe so the check stays pure."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import safe_files
from ..probe_registry import ProbeContext, probe


@dataclass(frozen=True)
class BaselineScores:
    """Task scores of a baseline result document (`evidence.tasks`), or why it could not be read.

    `scores`: task -> metric -> value; `n_shot` and `limits`: task -> what the baseline was measured with;
    `model`: the baseline model's name. A baseline that cannot be read has `error` set and nothing else.
    """

    path: str
    model: str = ""
    scores: dict[str, Any] = field(default_factory=dict)
    n_shot: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def read_baseline(path: Path) -> BaselineScores:
    """The baseline at `path` (a result document); a missing or malformed file is reported in `error`, never raised.

    Read through `safe_files.read_json_document`, as result documents are: a directory, FIFO or device is
    refused at once (planning reads the baseline too, so a FIFO would otherwise hang `validate`), and
    the file is held to DOCUMENT_MAX_BYTES and DOCUMENT_MAX_DEPTH.
    """
    try:
        document = safe_files.read_json_document(path, safe_files.DOCUMENT_MAX_BYTES, safe_files.DOCUMENT_MAX_DEPTH)
        tasks = document["evidence"]["tasks"]
        return BaselineScores(str(path), document["model"]["name"], tasks["scores"], tasks.get("n_shot", {}), tasks.get("limits", {}))
    except FileNotFoundError:
        return BaselineScores(str(path), error=f"baseline result {path} not found")
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        return BaselineScores(str(path), error=f"baseline {path} is not a result document with task scores ({type(exc).__name__}: {exc})")
    except safe_files.JSONTooDeepError as exc:
        return BaselineScores(str(path), error=f"baseline {path} is not a result document with task scores ({exc})")
    except safe_files.UnsafeFileError as exc:
        return BaselineScores(str(path), error=f"baseline {path} cannot be read: {exc}")
    except (OSError, UnicodeDecodeError) as exc:
        return BaselineScores(str(path), error=f"baseline {path} cannot be read ({type(exc).__name__}: {exc})")


@probe("baseline", evidence=BaselineScores, parameterized=True)
def baseline_probe(context: ProbeContext) -> BaselineScores:
    """The baseline document named by the rule (`params["baseline"]`: its resolved path)."""
    return read_baseline(Path(context.params["baseline"]))
