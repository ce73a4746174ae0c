"""One module per way of reaching an agent, all behind the interface in `base`."""

from __future__ import annotations

from playground.agents.base import AgentError, Answer, ChatRequest, client_for

__all__ = ["AgentError", "Answer", "ChatRequest", "client_for"]
