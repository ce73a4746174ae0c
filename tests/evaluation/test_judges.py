"""LLM judges: the template's rendering (row values are plain text, never template code), the
parsing of answers (good, fenced, malformed, out of range, wrong label, huge), and judges that
call a real local OpenAI-compatible server (tests/playground/agent_server.py, /judge modes)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from evaluation.judges import (
    ANSWER_CHARS,
    LABEL,
    NUMBER,
    RENDERED_CHARS,
    RESPONSE_BYTES,
    Output,
    parse_verdict,
    render,
)
from evaluation.scorers import Row, Score, ScorerSpec, SpecError, build
from playground.agents.base import Stop, Stopped
from tests.playground.agent_server import AgentServer
from tests.rows import XSS

ROW = Row(
    inputs={"question": "What is the capital of France?"},
    outputs="Paris.",
    expectations={"expected_response": "Paris"},
)
TEMPLATE = "Question: {{ inputs }}\nAnswer: {{outputs}}\nExpected: {{ expectations }}"


@pytest.fixture(scope="module")
def server() -> Iterator[AgentServer]:
    server = AgentServer().start()
    yield server
    server.stop()


@pytest.fixture
def judge_server(server: AgentServer) -> AgentServer:
    server.forget()
    return server


def judge_spec(url: str, **config) -> ScorerSpec:
    return ScorerSpec.from_config(
        {"kind": "judge", "name": "correct", "config": {"url": url, "instructions": TEMPLATE,
                                                        **config}}
    )  # fmt: skip


# --- Rendering ----------------------------------------------------------------------------------


def test_render_puts_text_as_text_and_the_rest_as_json():
    prompt = render(TEMPLATE, ROW)
    assert prompt == (
        'Question: {\n  "question": "What is the capital of France?"\n}\n'
        "Answer: Paris.\n"
        'Expected: {\n  "expected_response": "Paris"\n}'
    )


@pytest.mark.parametrize(
    "attack",
    [
        "{{ expectations }}",
        "{% load static %}{{ settings.SECRET_KEY }}",
        "{{ ''.__class__.__mro__ }}",
        "${jndi:ldap://x}",
        XSS,
    ],
)
def test_template_syntax_in_a_row_is_plain_text(attack):
    row = Row(inputs={"q": attack}, outputs=attack, expectations={"expected_response": "HIDDEN"})
    prompt = render("A: {{ outputs }} I: {{ inputs }}", row)
    assert prompt == f"A: {attack} I: " + json.dumps({"q": attack}, indent=2, ensure_ascii=False)
    assert "HIDDEN" not in prompt


def test_render_caps_each_huge_value():
    row = Row(outputs="x" * (RENDERED_CHARS * 3))
    prompt = render("{{ outputs }}", row)
    assert len(prompt) < RENDERED_CHARS + 100
    assert prompt.endswith(f"[... {RENDERED_CHARS * 2} more characters]")


@pytest.mark.parametrize(
    ("instructions", "message"),
    [
        ("Is it good?", "at least one of"),
        ("Judge {{ trace }}", r"\{\{ trace \}\}"),
        ("Judge {{ inputs.question }} and {{ outputs }}", r"\{\{ inputs.question \}\}"),
        ("Judge {{ outputs }} for {{ user }}", r"\{\{ user \}\}"),
    ],
)
def test_instructions_use_only_the_three_variables(instructions, message):
    with pytest.raises(SpecError, match=message):
        judge_spec("http://127.0.0.1:9/v1", instructions=instructions)


# --- Parsing ------------------------------------------------------------------------------------

PASS_FAIL = Output()
SCALE = Output(NUMBER, minimum=1, maximum=5)
TONE = Output(LABEL, labels=("polite", "neutral", "rude"))


@pytest.mark.parametrize(
    ("answer", "output", "expected"),
    [
        ('{"result": true, "rationale": "Same city."}', PASS_FAIL, Score(True, "Same city.")),
        ('{"result": "fail", "rationale": "No."}', PASS_FAIL, Score(False, "No.")),
        ('{"result": 4, "rationale": "Good."}', SCALE, Score(4.0, "Good.")),
        ('{"result": "2.5"}', SCALE, Score(2.5, "")),
        ('{"result": "Polite ", "rationale": "Kind."}', TONE, Score("polite", "Kind.")),
        # Fenced, and with prose around it, as chat models like to answer.
        ('```json\n{"result": false, "rationale": "Wrong city."}\n```', PASS_FAIL,
         Score(False, "Wrong city.")),
        ('Here is my verdict: {"result": 5, "rationale": "Great"} Hope it helps! {x}', SCALE,
         Score(5.0, "Great")),
        ('{"rationale": {"why": 1}, "result": true}', PASS_FAIL, Score(True, '{"why": 1}')),
    ],
)  # fmt: skip
def test_good_answers_are_read_tolerantly(answer, output, expected):
    assert parse_verdict(answer, output) == expected


@pytest.mark.parametrize(
    ("answer", "output", "error"),
    [
        ("I think it passes.", PASS_FAIL, "did not answer a JSON object"),
        ('{"result": true', PASS_FAIL, "did not answer a JSON object"),
        ("[true]", PASS_FAIL, "did not answer a JSON object"),
        ('{"verdict": true}', PASS_FAIL, "has no result"),
        ('{"result": "maybe"}', PASS_FAIL, "is not pass/fail"),
        ('{"result": 1}', PASS_FAIL, "is not pass/fail"),
        ('{"result": 7}', SCALE, "outside the range 1-5"),
        ('{"result": NaN}', SCALE, "outside the range"),
        ('{"result": true}', SCALE, "is not a number"),
        ('{"result": "lots"}', SCALE, "is not a number"),
        ('{"result": "angry"}', TONE, "'angry' is not one of the labels"),
        ('{"result": ["polite"]}', TONE, "is not one of the labels"),
        ("[" * 30_000, PASS_FAIL, "did not answer a JSON object"),
    ],
)
def test_unusable_answers_are_errors_not_exceptions(answer, output, error):
    result = parse_verdict(answer, output)
    assert result.value is None
    assert error in result.error


def test_huge_answers_and_rationales_are_capped():
    huge = '{"result": true, "rationale": "' + "y" * (ANSWER_CHARS + 10) + '"}'
    assert "characters long" in parse_verdict(huge, PASS_FAIL).error
    long = '{"result": true, "rationale": "' + "y" * (ANSWER_CHARS - 100) + '"}'
    assert len(parse_verdict(long, PASS_FAIL).rationale) <= 2001
    junk = "{" * (ANSWER_CHARS - 1)
    assert len(parse_verdict(junk, PASS_FAIL).error) <= 501


# --- Config -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "either agent"),
        ({"url": "http://a.example/v1", "agent": "x"}, "either agent"),
        ({"url": "file:///etc/passwd"}, "Only http:// and https://"),
        ({"url": "http://a.example/v1", "api_key_env": "SECRET_KEY"}, "never sent"),
        ({"url": "http://a.example/v1", "output": "stars"}, "output must be one of"),
        ({"url": "http://a.example/v1", "output": "number", "min": 5, "max": 1}, "less than"),
        ({"url": "http://a.example/v1", "output": "number"}, "min is required"),
        ({"url": "http://a.example/v1", "output": "label", "labels": ["only"]}, "2 to 20"),
        ({"url": "http://a.example/v1", "output": "label", "labels": "a,a"}, "2 to 20"),
        ({"url": "http://a.example/v1", "temprature": 0}, "unknown option temprature"),
    ],
)
def test_a_bad_judge_config_says_what_to_fix(config, message):
    with pytest.raises(SpecError, match=message):
        ScorerSpec.from_config(
            {"kind": "judge", "name": "j", "config": {"instructions": TEMPLATE, **config}}
        )


@pytest.mark.django_db
def test_a_judge_named_after_an_agent_needs_an_openai_agent():
    from playground.models import Agent

    Agent.objects.create(name="demo", kind="builtin", config={"agent": "echo"})
    for name, message in [("demo", "not an OpenAI-compatible agent"), ("nobody", "no playground")]:
        with pytest.raises(SpecError, match=message):
            ScorerSpec.from_config(
                {"kind": "judge", "name": "j", "config": {"agent": name, "instructions": TEMPLATE}}
            )


# --- A real endpoint ----------------------------------------------------------------------------


def test_a_judge_asks_for_json_and_reads_its_verdict(judge_server):
    judge_server.judge_answers.append('{"result": true, "rationale": "Paris is right."}')
    judge = build(judge_spec(f"{judge_server.url}/judge/v1", model="judge-1", temperature=0))
    assert judge.score(ROW) == Score(True, "Paris is right.")
    (request,) = judge_server.requests
    body = request["body"]
    assert request["path"] == "/judge/v1/chat/completions"
    assert body["model"] == "judge-1" and body["temperature"] == 0 and body["stream"] is False
    assert body["response_format"] == {"type": "json_object"}
    system, user = body["messages"]
    assert '{"result": <result>, "rationale"' in system["content"]
    assert "true (pass) or false (fail)" in system["content"]
    assert user["content"] == render(TEMPLATE, ROW)


def test_a_judge_scores_numbers_and_labels(judge_server):
    judge_server.judge_answers.extend(['```json\n{"result": 3, "rationale": "ok"}\n```',
                                       '{"result": "RUDE", "rationale": "Shouting."}'])  # fmt: skip
    scale = build(judge_spec(f"{judge_server.url}/judge/v1", output="number", min=1, max=5))
    tone = build(judge_spec(f"{judge_server.url}/judge/v1", output="label",
                            labels="polite\nneutral\nrude"))  # fmt: skip
    assert scale.score(ROW) == Score(3.0, "ok")
    assert tone.score(ROW) == Score("rude", "Shouting.")
    assert "a number from 1 to 5" in judge_server.requests[0]["body"]["messages"][0]["content"]
    assert (
        '"polite", "neutral", "rude"' in judge_server.requests[1]["body"]["messages"][0]["content"]
    )


def test_malformed_and_out_of_range_answers_are_recorded_as_errors(judge_server):
    judge_server.judge_answers.extend(["Sure, it passes!", '{"result": 9}'])
    scale = build(judge_spec(f"{judge_server.url}/judge/v1", output="number", min=0, max=1))
    first, second = scale.score(ROW), scale.score(ROW)
    assert first.value is None and "did not answer a JSON object" in first.error
    assert second.value is None and "outside the range 0-1" in second.error


def test_an_endpoint_without_json_mode_is_asked_again_without_it_once(judge_server):
    judge = build(judge_spec(f"{judge_server.url}/judge-no-json/v1"))
    assert judge.score(ROW).value is True
    assert judge.score(ROW).value is True
    formats = ["response_format" in r["body"] for r in judge_server.requests]
    assert formats == [True, False, False]


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/fail/v1", "The judge could not answer: The agent answered HTTP 500: the model crashed"),
        ("/malformed/v1", "The judge could not answer: The judge's answer is not JSON"),
        ("/hang/v1", "The judge could not answer: The agent did not answer within 0.2 s"),
    ],
)
def test_an_endpoint_that_fails_is_an_error_on_the_row(judge_server, path, error):
    result = build(judge_spec(f"{judge_server.url}{path}", timeout=0.2)).score(ROW)
    assert result.value is None and result.error.startswith(error)


def test_a_huge_http_answer_is_not_read_whole(judge_server):
    judge_server.judge_answers.append("x" * (RESPONSE_BYTES + 1))
    result = build(judge_spec(f"{judge_server.url}/judge/v1")).score(ROW)
    assert result.error == (
        f"The judge could not answer: The judge's answer is larger than {RESPONSE_BYTES} bytes."
    )


def test_a_refused_host_is_an_error_not_a_call(judge_server, settings):
    settings.SPYGLASS_AGENT_HOSTS = ["10.0.0.0/8"]
    with pytest.raises(SpecError, match="is not in SPYGLASS_AGENT_HOSTS"):
        judge_spec(f"{judge_server.url}/judge/v1")  # a literal address: refused at once
    # A name is checked where it resolves, at call time (egress's pinned addresses).
    port = judge_server.server_address[1]
    result = build(judge_spec(f"http://localhost:{port}/judge/v1")).score(ROW)
    assert "is not in SPYGLASS_AGENT_HOSTS" in result.error
    assert judge_server.requests == []


def test_a_cancelled_evaluation_stops_its_judge(judge_server):
    stop = Stop()
    stop.request()
    judge = build(judge_spec(f"{judge_server.url}/judge/v1"), stop=stop)
    with pytest.raises(Stopped):
        judge.score(ROW)


@pytest.mark.django_db
def test_a_judge_runs_on_a_playground_agent_with_its_stored_key(judge_server, settings):
    from cryptography.fernet import Fernet

    from playground.models import Agent

    settings.SPYGLASS_SECRETS_KEY = Fernet.generate_key().decode()
    agent = Agent.objects.create(
        name="judge-agent", kind="openai",
        config={"url": f"{judge_server.url}/judge/v1", "model": "agent-model"},
    )  # fmt: skip
    agent.set_api_key("sk-judge")
    spec = ScorerSpec.from_config(
        {"kind": "judge", "name": "j", "config": {"agent": "judge-agent", "model": "judge-2",
                                                  "instructions": TEMPLATE}}
    )  # fmt: skip
    assert build(spec).score(ROW).value is True
    (request,) = judge_server.requests
    assert request["headers"]["Authorization"] == "Bearer sk-judge"
    assert request["body"]["model"] == "judge-2"
    assert Agent.objects.get(pk=agent.pk).config["model"] == "agent-model"  # not changed
