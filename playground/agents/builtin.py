"""Demo agents that need no network, so a fresh `make run` has something to talk to.

- `echo`: repeats the last user message (and any custom_inputs) back, word by word.
- `oracle-judge`: the two-role agent of MLflow's ChatModel tutorial: an oracle drafts an
  answer, a judge improves it; each role has its own instructions and temperature.

Both run over `LocalGenerator`, a small deterministic text generator (same prompt, same
temperature, same words), and record the spans a real agent would: AGENT -> CHAIN -> LLM.

Config: `agent` ("echo" or "oracle-judge"), `roles` (oracle-judge: instructions and
temperature per role), `word_delay_ms` (pace of the stream), `latency_ms` (a fixed time
for the whole answer, for benchmarks).
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from typing import TYPE_CHECKING, Any

from playground.agents.base import AgentError, Answer, ChatRequest, Json, Stop, Stream
from tracking import chat

if TYPE_CHECKING:
    from playground.models import Agent
    from playground.tracing import Span

ECHO = "echo"
ORACLE_JUDGE = "oracle-judge"

DEFAULT_ROLES: Json = {
    "oracle": {
        "instructions": "You are an oracle. Answer the question as directly as you can.",
        "temperature": 0.9,
        "max_tokens": 120,
    },
    "judge": {
        "instructions": (
            "You are a judge. Review the oracle's answer, keep what is right and improve "
            "what is not."
        ),
        "temperature": 0.5,
        "max_tokens": 200,
    },
}

_WORDS = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")
_OPENERS = ["In short", "Put simply", "To answer directly", "The key point", "Briefly"]
_CLAIMS = [
    "depends on {t}",
    "comes down to how {t} is measured",
    "is best understood through {t}",
    "starts with a clear picture of {t}",
    "changes once {t} is taken into account",
]
_ADVICE = [
    "check the inputs first",
    "compare two versions on the same prompt",
    "look at the slowest span",
    "keep the prompt short and specific",
    "log the parameters with every run",
    "measure before changing anything",
]


class LocalGenerator:
    """Deterministic text from a prompt: a seeded choice among phrases, shaped by the
    topic words of the prompt. Higher temperature, more varied choices and more words."""

    def generate(self, instructions: str, prompt: str, temperature: float, max_tokens: int) -> str:
        digest = hashlib.sha256(f"{instructions}\n{prompt}\n{temperature:.2f}".encode()).digest()
        rng = random.Random(digest)
        topics = [w.lower() for w in _WORDS.findall(prompt)] or ["the question"]
        topic = rng.choice(topics[: max(1, int(len(topics) * min(1.0, 0.3 + temperature)))])
        points = 2 + int(temperature * 2)
        lines = [f"{rng.choice(_OPENERS)}, it {rng.choice(_CLAIMS).format(t=f'**{topic}**')}."]
        lines += [f"- {advice}" for advice in rng.sample(_ADVICE, k=min(points, len(_ADVICE)))]
        words = "\n".join(lines).split(" ")
        return " ".join(words[:max_tokens])


def count_tokens(text: str) -> int:
    return len(text.split())


class Client:
    def __init__(self, agent: Agent, stop: Stop | None = None) -> None:
        self.agent = agent
        self.stop = stop or Stop()
        self.config: Json = agent.config or {}
        self.kind = self.config.get("agent", ECHO)
        if self.kind not in (ECHO, ORACLE_JUDGE):
            raise AgentError(f"Unknown built-in agent {self.kind!r}: use echo or oracle-judge.")
        self.word_delay = float(self.config.get("word_delay_ms", 15)) / 1000
        self.latency = self.config.get("latency_ms")
        self.generator = LocalGenerator()

    def stream(self, request: ChatRequest, parent: Span) -> Stream:
        # `parent` is the AGENT span of the call; the roles are CHAINs under it.
        started = time.monotonic()
        if self.kind == ECHO:
            answer = yield from self._echo(request, parent)
        else:
            answer = yield from self._oracle_judge(request, parent)
        if self.latency is not None:
            self.stop.sleep(float(self.latency) / 1000 - (time.monotonic() - started))
        return answer

    def _echo(self, request: ChatRequest, parent: Span) -> Stream:
        prompt = _last_user_message(request.messages)
        with parent.child("echo", "CHAIN", inputs={"prompt": prompt}) as chain:
            with chain.child("generate", "LLM", inputs={"prompt": prompt}) as llm:
                text = f"You said: {prompt}"
                yield from self._words(text)
                answer = self._answer(request, prompt, text)
                llm.set_usage(answer.usage())
                llm.end({"text": text})
            chain.end({"text": text})
        return answer

    def _oracle_judge(self, request: ChatRequest, parent: Span) -> Stream:
        prompt = _last_user_message(request.messages)
        roles = {**DEFAULT_ROLES, **(self.config.get("roles") or {})}
        draft = self._role("oracle", roles["oracle"], prompt, request, parent)
        judge_prompt = f"Question: {prompt}\nOracle's answer: {draft}"
        judge = roles["judge"]
        with parent.child("judge", "CHAIN", inputs={"prompt": judge_prompt}) as chain:
            # The judge's topics come from the question; the draft is what it improves on.
            kept = draft.split("\n", 1)[0]
            text = f"{kept}\n\n**Improved:** {self._generate(judge, prompt, request)}"
            inputs = self._llm_inputs(judge, judge_prompt)
            with chain.child("generate", "LLM", inputs=inputs) as llm:
                yield from self._words(text)
                llm.set_usage(self._usage(judge_prompt, text))
                llm.end({"text": text})
            chain.end({"text": text})
        answer = self._answer(request, f"{prompt} {judge_prompt}", text)
        answer.custom_outputs = {**(answer.custom_outputs or {}), "oracle_draft": draft}
        return answer

    def _role(self, name: str, role: Json, prompt: str, request: ChatRequest, parent: Span) -> str:
        with parent.child(name, "CHAIN", inputs={"prompt": prompt}) as chain:
            with chain.child("generate", "LLM", inputs=self._llm_inputs(role, prompt)) as llm:
                text = self._generate(role, prompt, request)
                self.stop.sleep(self.word_delay * 2)
                llm.set_usage(self._usage(prompt, text))
                llm.end({"text": text})
            chain.end({"text": text})
        return text

    def _generate(self, role: Json, prompt: str, request: ChatRequest) -> str:
        # A temperature or max_tokens sent with the message overrides the role's own.
        temperature = float(request.params.get("temperature", role.get("temperature", 0.7)))
        max_tokens = int(request.params.get("max_tokens", role.get("max_tokens", 200)))
        instructions = role.get("instructions", "")
        text = self.generator.generate(instructions, prompt, temperature, max_tokens)
        for stop in _stops(request.params.get("stop")):
            text = text.split(stop, 1)[0]
        return text

    def _llm_inputs(self, role: Json, prompt: str) -> Json:
        return {
            "messages": [
                {"role": "system", "content": role.get("instructions", "")},
                {"role": "user", "content": prompt},
            ],
            "temperature": role.get("temperature"),
        }

    def _words(self, text: str) -> Stream:
        words = text.split(" ")
        for i, word in enumerate(words):
            yield word if i == 0 else f" {word}"
            if self.word_delay:
                self.stop.sleep(self.word_delay)
        return None

    def _usage(self, prompt: str, text: str) -> Json:
        prompt_tokens, completion_tokens = count_tokens(prompt), count_tokens(text)
        return {
            "input_tokens": prompt_tokens,
            "output_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

    def _answer(self, request: ChatRequest, prompt: str, text: str) -> Answer:
        usage = self._usage(" ".join(m.content for m in chat.read(request.messages)), text)
        custom_outputs = None
        if request.custom_inputs is not None:
            custom_outputs = {"custom_inputs": request.custom_inputs}
        return Answer(
            text,
            custom_outputs=custom_outputs,
            prompt_tokens=usage["input_tokens"],
            completion_tokens=usage["output_tokens"],
            total_tokens=usage["total_tokens"],
        )


def _last_user_message(messages: list[Json]) -> str:
    for message in reversed(chat.read(messages)):
        if message.role == "user":
            return message.content
    raise AgentError("There is no user message to answer.")


def _stops(stop: Any) -> list[str]:
    if isinstance(stop, str):
        return [stop] if stop else []
    return [s for s in stop or [] if isinstance(s, str) and s]


DEMO_AGENTS = [
    {"name": "Echo (built-in)", "config": {"agent": ECHO}},
    {"name": "Oracle/judge (built-in)", "config": {"agent": ORACLE_JUDGE, "roles": DEFAULT_ROLES}},
]


def ensure_demo_agents() -> None:
    """Create the demo agents when there are no agents at all, so a fresh clone can chat."""
    from playground.models import Agent, AgentKind

    if Agent.objects.exists():
        return
    for spec in DEMO_AGENTS:
        defaults = {"kind": AgentKind.BUILTIN, "config": spec["config"]}
        Agent.objects.get_or_create(name=spec["name"], defaults=defaults)
