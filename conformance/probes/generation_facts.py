"""The generation settings probe: generation_config.json read and judged as transformers validates it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..probe_registry import ProbeContext, probe
from .generation_settings import GenerationFindings, GenerationSettings, read_generation_settings, validate_generation_settings
from .static import StaticFacts

__all__ = ["GenerationSettingsEvidence"]


@dataclass
class GenerationSettingsEvidence:
    """generation_config.json as read, what validation found (None when not read), and the context judged against."""

    settings: GenerationSettings
    findings: GenerationFindings | None
    context_length: int | None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON for evidence: presence, read error, findings, context length."""
        return {
            "present": self.settings.present,
            "error": self.settings.error,
            "findings": self.findings.to_dict() if self.findings is not None else None,
            "context_length": self.context_length,
        }


@probe("generation_settings", evidence=GenerationSettingsEvidence, depends=("static",))
def generation_settings_probe(context: ProbeContext) -> GenerationSettingsEvidence:
    """generation_config.json read bounded and validated against the model's context length (from config.json)."""
    facts = context.evidence.get("static", StaticFacts)
    length = facts.architecture.get("context_length")
    context_length = length if type(length) is int and length > 0 else None
    settings = read_generation_settings(context.candidate)
    findings = validate_generation_settings(settings.data, context_length) if settings.data is not None else None
    return GenerationSettingsEvidence(settings=settings, findings=findings, context_length=context_length)
