"""Loading specs: parse YAML/JSON, validate against the generated schema, resolve `extends`, merge rules."""

from __future__ import annotations

import ast
import difflib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from .catalogue import get_check, suggest
from .compare import compile_pattern
from .digests import sha256_text
from .errors import RequestError, SpecError
from .rule import COMPARISON_KEYS, Rule
from .schema import spec_schema
from .sourcefile import LineIndex, format_path, read_structured
from .standards import find_standard, is_standard_name, standard_hint

_RULE_RESERVED = {"id", "level", "check", "description"}
# A spec with more problems than this lists the first ones and counts the rest.
MAX_LISTED_ERRORS = 20
_UNKNOWN_KEY_VALIDATORS = ("unevaluatedProperties", "additionalProperties")
_UNEXPECTED = re.compile(r"\((.*) (?:was|were) unexpected\)$", re.DOTALL)


class SpecErrors(SpecError):
    """Every problem found in one spec file, each a SpecError, in line order.

    It is a SpecError itself (the first problem's file, rule, field and line), so callers that handle one
    problem still work; `str()` is one line per problem (at most MAX_LISTED_ERRORS, then "and N more").
    """

    def __init__(self, errors: list[SpecError]) -> None:
        """Hold `errors` (at least one), ordered by line."""
        self.errors = sorted(errors, key=lambda error: (error.line is None, error.line or 0))
        first = self.errors[0]
        super().__init__(first.file, first.message, rule_id=first.rule_id, field=first.field, line=first.line)

    def __str__(self) -> str:
        """One line per problem, as `SpecError` writes it."""
        lines = [str(error) for error in self.errors[:MAX_LISTED_ERRORS]]
        if len(self.errors) > MAX_LISTED_ERRORS:
            lines.append(f"{self.file}: and {len(self.errors) - MAX_LISTED_ERRORS} more problems")
        return "\n".join(lines)


@dataclass
class Spec:
    """A resolved spec: its identity, the merged rules (extended ones first, overrides in place) and where it came from."""
    id: str
    version: str
    title: str
    rules: list[Rule]
    path: Path | None = None
    extends: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        """Hash of the resolved spec (extended rules included), so a result names exactly what judged it."""
        canonical = json.dumps(
            {"id": self.id, "version": self.version, "rules": [r.to_dict() for r in self.rules]},
            sort_keys=True,
            separators=(",", ":"),
        )
        return sha256_text(canonical)

    def identity(self) -> dict[str, Any]:
        """The result document's `spec` block."""
        return {"id": self.id, "version": self.version, "title": self.title, "path": str(self.path) if self.path else None, "sha256": self.sha256}

    def select(self, only: list[str] | None) -> list[Rule]:
        """The rules with these ids (all rules when `only` is empty), in spec order.

        Raises RequestError naming the ids that are not in the spec, each with the closest id it has.
        """
        if not only:
            return list(self.rules)
        known = {rule.id for rule in self.rules}
        unknown = [rule_id for rule_id in only if rule_id not in known]
        if unknown:
            hints = [f"{rule_id!r} -> {close[0]!r}" for rule_id in unknown if (close := difflib.get_close_matches(rule_id, sorted(known), n=1, cutoff=0.6))]
            raise RequestError(
                f"--only names rules not in spec {self.id}: {', '.join(unknown)}" + (f"; did you mean {', '.join(hints)}?" if hints else "")
            )
        return [rule for rule in self.rules if rule.id in only]


def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(spec_schema(), format_checker=jsonschema.FormatChecker())


def _relevance(error: jsonschema.ValidationError) -> tuple[int, int]:
    """Prefer the concrete error (a wrong type) over the unevaluated-key echo it causes, deeper paths first."""
    return (-1 if error.validator == "unevaluatedProperties" else 0, len(error.absolute_path))


def _schema_error(file: str, data: dict[str, Any], lines: LineIndex, error: jsonschema.ValidationError) -> SpecError:
    path = list(error.absolute_path)
    rule_id = None
    if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
        rule = data["rules"][path[1]]
        rule_id = rule.get("id") if isinstance(rule, dict) else None
    message = error.message
    alternatives = error.validator_value
    if error.validator == "anyOf" and isinstance(alternatives, list) and all(set(s) == {"required"} for s in alternatives):
        keys = [s["required"][0] for s in alternatives]
        message = f"needs a comparison: one of {', '.join(keys)}"
    elif error.validator == "unevaluatedProperties":
        message = message.replace("Unevaluated properties are not allowed", "unknown key for this check")
    elif error.validator == "required":
        missing = _missing_key(error)
        path = [*path, missing]
        message = f"missing required field {missing!r}"
    return SpecError(file, message, rule_id=rule_id, field=format_path(path), line=lines.line(path))


def _check_names(file: str, rules: list[Any], lines: LineIndex) -> dict[int, SpecError]:
    """Unknown check names by rule index, with a suggestion: the schema's enum error would list the whole catalogue."""
    errors: dict[int, SpecError] = {}
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict) or not isinstance(rule.get("check"), str):
            continue
        name = rule["check"]
        try:
            get_check(name)
        except RequestError:
            hint = suggest(name)
            message = f"unknown check {name!r}" + (f"; did you mean {hint!r}?" if hint else "; see `conformance rules`")
            path = ["rules", index, "check"]
            errors[index] = SpecError(file, message, rule_id=rule.get("id"), field=format_path(path), line=lines.line(path))
    return errors


def _unexpected_keys(error: jsonschema.ValidationError) -> list[str]:
    """The key names an unevaluatedProperties error lists (jsonschema writes them as Python reprs)."""
    found = _UNEXPECTED.search(error.message)
    if found is None:
        return []
    try:
        names = ast.literal_eval(f"[{found.group(1)}]")
    except (ValueError, SyntaxError):
        return []
    return [name for name in names if isinstance(name, str)]


def _known_keys(data: dict[str, Any], path: list[Any]) -> list[str]:
    """The keys allowed where an unknown key was found: a rule's reserved keys, its check's parameters and comparisons."""
    if len(path) == 2 and path[0] == "rules" and isinstance(path[1], int):
        rule = data["rules"][path[1]]
        try:
            check = get_check(rule["check"])
        except (RequestError, KeyError, TypeError):
            return sorted(_RULE_RESERVED)
        return [*sorted(_RULE_RESERVED), *check.params, *check.comparisons]
    if not path:
        return list(spec_schema().get("properties", {}))
    return []


def _unknown_key_errors(
    file: str, data: dict[str, Any], lines: LineIndex, error: jsonschema.ValidationError,
    needs_comparison: list[str] | None, missing: list[str],
) -> list[SpecError]:
    """One SpecError per key an unevaluated- or additionalProperties error names, with the closest allowed key.

    A key the check does know is an echo of another error in the same rule (a wrong type leaves the key
    unevaluated) and is dropped. When the rule also lacks a comparison (`needs_comparison`) or a required
    key (`missing`) and the unknown key is its misspelling, the two problems are one line.
    """
    path = list(error.absolute_path)
    known = _known_keys(data, path)
    rule_id = _rule_id(data, path)
    errors = []
    for key in _unexpected_keys(error):
        if key in known:
            continue
        hint = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        message = f"unknown key {key!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
        if needs_comparison is not None and hint and hint[0] in needs_comparison:
            message += f" (the rule needs one of {', '.join(needs_comparison)})"
        elif hint and hint[0] in missing:
            message += f" ({hint[0]!r} is required)"
        key_path = [*path, key]
        errors.append(SpecError(file, message, rule_id=rule_id, field=format_path(key_path), line=lines.line(key_path)))
    return errors


def _rule_id(data: dict[str, Any], path: list[Any]) -> str | None:
    if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
        rule = data["rules"][path[1]]
        return rule.get("id") if isinstance(rule, dict) else None
    return None


def _missing_key(error: jsonschema.ValidationError) -> str:
    """The key a `required` error names (jsonschema: "'name' is a required property")."""
    return error.message.split("'")[1] if "'" in error.message else error.message


def _comparison_keys(error: jsonschema.ValidationError) -> list[str] | None:
    """The keys of a "needs one of these comparisons" anyOf error, else None."""
    alternatives = error.validator_value
    if error.validator == "anyOf" and isinstance(alternatives, list) and all(set(s) == {"required"} for s in alternatives):
        return [s["required"][0] for s in alternatives]
    return None


def _schema_errors(file: str, data: dict[str, Any], lines: LineIndex, skipped_rules: set[int]) -> list[SpecError]:
    """Every schema problem of the spec as SpecErrors, one per problem (rules in `skipped_rules` left out).

    Errors are grouped by rule (or top-level key); in each group every unknown key is named with a
    suggestion and every other error is reported at its most specific place (`best_match`), once.
    """
    groups: dict[tuple[Any, ...], list[jsonschema.ValidationError]] = {}
    for error in _validator().iter_errors(data):
        path = list(error.absolute_path)
        group = tuple(path[:2]) if path[:1] == ["rules"] and len(path) >= 2 else tuple(path[:1])
        if len(group) == 2 and group[1] in skipped_rules:
            continue  # its check is unknown: what the schema says of it would be noise
        groups.setdefault(group, []).append(error)
    found: list[SpecError] = []
    for errors in groups.values():
        group_found = len(found)
        unknown = [error for error in errors if error.validator in _UNKNOWN_KEY_VALIDATORS]
        others = [error for error in errors if error.validator not in _UNKNOWN_KEY_VALIDATORS]
        needs = next((keys for keys in map(_comparison_keys, others) if keys is not None), None)
        missing = [_missing_key(error) for error in others if error.validator == "required"]
        named = [problem for error in unknown for problem in _unknown_key_errors(file, data, lines, error, needs, missing)]
        merged = needs is not None and any("(the rule needs one of" in problem.message for problem in named)
        said = {key for key in missing if any(f"({key!r} is required)" in problem.message for problem in named)}
        found.extend(named)
        seen: set[str] = set()
        for error in others:
            if (merged and _comparison_keys(error) is not None) or (error.validator == "required" and _missing_key(error) in said):
                continue  # said on the misspelt key's line
            best = jsonschema.exceptions.best_match([error], key=_relevance) if error.context else error
            problem = _schema_error(file, data, lines, best if _comparison_keys(error) is None else error)
            if str(problem) not in seen:
                seen.add(str(problem))
                found.append(problem)
        if len(found) == group_found:  # only echoes were left: the schema still refuses it, so say what it says
            found.append(_schema_error(file, data, lines, jsonschema.exceptions.best_match(errors, key=_relevance)))
    return found


def _parse_rules(file: str, data: dict[str, Any], lines: LineIndex, problems: list[SpecError], judged: set[int]) -> list[Rule]:
    """The spec's own rules; every problem (a repeated id, a value the schema cannot judge) goes to `problems`.

    Rules whose index is in `judged` already have a schema problem: their ids still count for repeats, but
    they are not built. Nothing is raised, so one pass lists every problem of the file.
    """
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(data.get("rules", []) if isinstance(data.get("rules"), list) else []):
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            continue
        if raw["id"] in seen:
            path = ["rules", index, "id"]
            problems.append(
                SpecError(file, f"duplicate rule id (first at rules[{seen[raw['id']]}])", rule_id=raw["id"], field=format_path(path), line=lines.line(path))
            )
            continue
        seen[raw["id"]] = index
        if index in judged:
            continue
        comparison = {key: raw[key] for key in COMPARISON_KEYS if key in raw}
        params = {key: value for key, value in raw.items() if key not in _RULE_RESERVED and key not in comparison}
        rule = Rule(
            id=raw["id"],
            level=raw["level"],
            check=raw["check"],
            comparison=comparison,
            params=params,
            description=raw.get("description", ""),
            source=file,
        )
        try:
            _check_values(file, rule, index, lines)
        except SpecError as exc:
            problems.append(exc)
            continue
        rules.append(rule)
    return rules


_RULE_FIELD = re.compile(r"^rules\[(\d+)\]")


def _rule_indexes(problems: list[SpecError]) -> set[int]:
    """The indexes of the rules these problems are about (from their field paths)."""
    found = (_RULE_FIELD.match(problem.field or "") for problem in problems)
    return {int(match.group(1)) for match in found if match}


def _finite(value: Any) -> bool:
    """False for a number YAML spells .inf or .nan, anywhere in a list or mapping; True for other values."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(item) for item in value.values())
    if isinstance(value, list):
        return all(_finite(item) for item in value)
    return True


def _check_values(file: str, rule: Rule, index: int, lines: LineIndex) -> None:
    """What JSON Schema cannot say, checked when the spec is read, not mid-run.

    No infinite or NaN numbers, a pattern the matching engine compiles, and the check's own cross-field rules
    (a speed rule's `measurement` with max_runs < min_runs). Raises SpecError at the offending key.
    """
    for key, value in [*rule.comparison.items(), *rule.params.items()]:
        if not _finite(value):
            path = ["rules", index, key]
            raise SpecError(file, "numbers must be finite (not .inf or .nan)", rule_id=rule.id, field=format_path(path), line=lines.line(path))
    if "pattern" in rule.comparison:  # compiled now by the engine that will match it, within its budget
        try:
            compile_pattern(rule.comparison["pattern"])
        except ValueError as exc:
            path = ["rules", index, "pattern"]
            raise SpecError(file, str(exc), rule_id=rule.id, field=format_path(path), line=lines.line(path)) from None
    probe_params = get_check(rule.check).probe_params
    if probe_params is None:
        return
    try:
        probe_params(rule)
    except (ValueError, TypeError) as exc:
        text = str(exc)
        named = next((name for name in rule.params if text.startswith(f"{name}.") or f" {name}" in f" {text}"), None)
        path = ["rules", index, *([named] if named else [])]
        raise SpecError(file, text, rule_id=rule.id, field=format_path(path), line=lines.line(path)) from None


def _resolve_extends(name: str, base_file: Path, file: str, index: int, lines: LineIndex) -> Path:
    """A shipped standard by name, or a path relative to the spec that must stay inside the spec's folder."""
    field_path = ["extends", index]
    if is_standard_name(name):
        shipped = find_standard(name)
        if shipped is not None:
            return shipped
        raise SpecError(
            file,
            f"extends names unknown standard {name!r}; {standard_hint(name)}",
            field=format_path(field_path),
            line=lines.line(field_path),
        )
    folder = base_file.parent.resolve()
    target = (folder / name).resolve()
    if not target.is_relative_to(folder):
        raise SpecError(file, f"extends path {name!r} leaves the spec's folder", field=format_path(field_path), line=lines.line(field_path))
    if not target.is_file():
        raise SpecError(file, f"extends file {name!r} not found", field=format_path(field_path), line=lines.line(field_path))
    return target


def _load(path: Path, stack: tuple[Path, ...]) -> Spec:
    file = str(path)
    data, lines = read_structured(path)
    if not isinstance(data, dict):
        raise SpecError(file, f"a spec must be a mapping, found {type(data).__name__}", line=1)
    raw_rules = data.get("rules")
    name_errors = _check_names(file, raw_rules if isinstance(raw_rules, list) else [], lines)
    problems = [*name_errors.values(), *_schema_errors(file, data, lines, set(name_errors))]
    schema_broken = bool(problems)
    merged: dict[str, Rule] = {}
    extends = data.get("extends", [])
    for index, name in enumerate(extends if isinstance(extends, list) else []):
        if not isinstance(name, str):
            continue  # a schema problem, already listed
        try:
            parent_path = _resolve_extends(name, path, file, index, lines)
            if parent_path in stack or parent_path == path.resolve():
                chain = " -> ".join(p.name for p in (*stack, parent_path))
                raise SpecError(file, f"extends cycle: {chain}", field=format_path(["extends", index]), line=lines.line(["extends", index]))
            parent = _load(parent_path, (*stack, parent_path))
        except SpecErrors as exc:
            problems += exc.errors
            continue
        except SpecError as exc:
            problems.append(exc)
            continue
        for rule in parent.rules:
            merged.pop(rule.id, None)
            merged[rule.id] = rule
    own_rules = _parse_rules(file, data, lines, problems, _rule_indexes(problems) if schema_broken else set())
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise SpecErrors(problems)
    for rule in own_rules:
        # Later wins: a rule that overrides an inherited id keeps the inherited position.
        merged[rule.id] = rule
    return Spec(
        id=data["id"],
        version=data["version"],
        title=data.get("title", ""),
        rules=list(merged.values()),
        path=path,
        extends=list(data.get("extends", [])),
        models=list(data.get("models", [])),
    )


def load_spec(path: str | Path) -> Spec:
    """Load, validate and resolve a spec file; a shipped standard may be named without a path.

    A file that exists wins over a shipped standard of the same name. Raises SpecError (a RequestError)
    for a missing file (with the closest shipped standard's name when `path` is a bare name), a file that
    is not a valid spec, or an `extends` chain that cannot be resolved.
    """
    candidate = Path(path)
    if not candidate.exists() and is_standard_name(str(path)):
        shipped = find_standard(str(path))
        if shipped is None:
            raise SpecError(str(path), f"spec file not found; {standard_hint(str(path))}")
        candidate = shipped
    if not candidate.is_file():
        raise SpecError(str(path), "spec file not found")
    resolved = candidate.resolve()
    return _load(resolved if candidate.is_absolute() else candidate, (resolved,))
