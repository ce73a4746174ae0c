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

_WORDS = re.compile(r"[A-Za-z][A-Za-z'-]*")
# Words that carry no topic: a question's "what", "how", "does", "good"...
_STOPWORDS = frozenset({
    "about", "above", "after", "again", "also", "aren't", "because", "been", "before", "being",
    "best", "better", "between", "both", "can't", "could", "does", "doesn't", "doing", "don't",
    "done", "each", "even", "every", "explain", "from", "give", "good", "have", "having", "here",
    "into", "isn't", "just", "know", "least", "less", "like", "make", "many", "more", "most",
    "much", "must", "need", "only", "other", "over", "please", "really", "require", "requires",
    "same", "should", "some", "such", "tell", "than", "that", "their", "them", "then", "there",
    "these", "they", "thing", "things", "this", "those", "through", "very", "want", "what", "when",
    "where", "which", "while", "whom", "whose", "will", "with", "without", "won't", "would", "your"
})  # fmt: skip
_CLAIMS = [
    "The short answer is that it comes down to {a} and {b}.",
    "Most of what matters here is {a}, and then {b}.",
    "A good answer starts with {a} and builds up to {b}.",
    "It depends mostly on {a}, with {b} as the second thing to get right.",
]
_DETAILS = [
    "Begin with the simplest version of {a} that works, then refine it.",
    "Keep {b} in view, because small changes there have the largest effect.",
    "Check each step against a clear example before you move on.",
    "If something goes wrong, look at {a} first: it is the usual cause.",
    "Write down what you tried, so that you can compare the results later.",
    "Take one change at a time, so that you know what made the difference.",
]
_VERDICTS = [
    "The oracle's answer is right about {a}, but it can be clearer.",
    "The oracle's answer is a fair start on {a}.",
    "The oracle's answer points the right way, though it is brief about {b}.",
]
_ADDITIONS = [
    "It helps to add a concrete example of {a}.",
    "It should say more about {b}, since that is where most mistakes happen.",
    "It is worth saying that {a} and {b} affect each other.",
    "A quick check at the end confirms that {a} came out as expected.",
]


def topics(prompt: str) -> tuple[str, str]:
    """Two phrases naming a prompt's topic ("the recipe", "the baking"): its longest words
    that are not question words, in the order the prompt uses them."""
    words = [w.lower() for w in _WORDS.findall(prompt)]
    seen: list[str] = []
    for word in words:
        if len(word) > 3 and word not in _STOPWORDS and word not in seen:
            seen.append(word)
    if not seen:
        return "the question", "the details"
    ranked = sorted(seen, key=lambda w: (-len(w), seen.index(w)))[:2]
    ranked.sort(key=seen.index)
    if len(ranked) == 1:
        return f"the {ranked[0]}", "the details"
    return f"the {ranked[0]}", f"the {ranked[1]}"


class LocalGenerator:
    """Deterministic text from a prompt: a seeded choice among sentences about the topic
    words of the prompt. Higher temperature, more varied choices and more sentences; the
    text stops after `max_tokens` words, as a model's would."""

    def generate(self, instructions: str, prompt: str, temperature: float, max_tokens: int) -> str:
        rng = _seeded(instructions, prompt, temperature)
        a, b = topics(prompt)
        count = 1 + int(temperature * 3)
        sentences = [rng.choice(_CLAIMS), *rng.sample(_DETAILS, k=min(count, len(_DETAILS)))]
        return _words_up_to(" ".join(t.format(a=a, b=b) for t in sentences), max_tokens)

    def review(self, instructions: str, prompt: str, draft: str, temperature: float,
               max_tokens: int) -> str:  # fmt: skip
        """The judge's answer: a verdict on the draft, then the draft improved."""
        rng = _seeded(instructions, f"{prompt}\n{draft}", temperature)
        a, b = topics(prompt)
        count = 1 + int(temperature * 2)
        verdict = rng.choice(_VERDICTS).format(a=a, b=b)
        additions = [
            t.format(a=a, b=b) for t in rng.sample(_ADDITIONS, k=min(count, len(_ADDITIONS)))
        ]
        text = f"{verdict}\n\n**Improved answer:** {draft} {' '.join(additions)}"
        return _words_up_to(text, max_tokens)


def _seeded(instructions: str, prompt: str, temperature: float) -> random.Random:
    digest = hashlib.sha256(f"{instructions}\n{prompt}\n{temperature:.2f}".encode()).digest()
    return random.Random(digest)


def _words_up_to(text: str, max_tokens: int) -> str:
    return " ".join(text.split(" ")[:max_tokens])


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
            text = self._review(judge, prompt, draft, request)
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
        text = self.generator.generate(prompt=prompt, **_sampling(role, request))
        return _stopped(text, request)

    def _review(self, role: Json, prompt: str, draft: str, request: ChatRequest) -> str:
        text = self.generator.review(prompt=prompt, draft=draft, **_sampling(role, request))
        return _stopped(text, request)

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


def _sampling(role: Json, request: ChatRequest) -> Json:
    # A temperature or max_tokens sent with the message overrides the role's own.
    return {
        "instructions": role.get("instructions", ""),
        "temperature": float(request.params.get("temperature", role.get("temperature", 0.7))),
        "max_tokens": int(request.params.get("max_tokens", role.get("max_tokens", 200))),
    }


def _stopped(text: str, request: ChatRequest) -> str:
    for stop in _stops(request.params.get("stop")):
        text = text.split(stop, 1)[0]
    return text


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
