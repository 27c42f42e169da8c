"""`ScriptedChatModel`: a chat model that plays back prepared replies, tool calls included.

It is what runs when no real model is configured (the demo, the examples, the tests): clearly
not an LLM, but it drives the real agent loop, the real tools and the real sandboxes, offline.
Each reply is an `AIMessage`, a plain string (a final answer, which ends the agent's turn), or a
function of the conversation so far (so a step can use what an earlier tool returned). When the
script runs out it answers with a plain closing message.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult

ScriptStep = AIMessage | str | Callable[[Sequence[BaseMessage]], AIMessage]

_call_ids = itertools.count(1)


def tool_call(name: str, **args: Any) -> AIMessage:
    """One scripted step: call tool `name` with `args`."""
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"call_{next(_call_ids)}"}])


class ScriptedChatModel(BaseChatModel):
    """Replies from `script`, one per model call.

    By default the steps are played once, in order, across every call (thread-safe), which lets a
    test script a whole scenario, subagents included. With `per_turn=True` each user turn replays
    the script from its start: the step is the number of model replies since the last user
    message, so one model serves any number of threads and runs at once (the offline demo model).
    """

    script: list[Any]
    closing: str = "Done."
    per_turn: bool = False
    position: int = 0
    _lock: threading.Lock

    def __init__(
        self, script: Sequence[ScriptStep], closing: str = "Done.", *, per_turn: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(script=list(script), closing=closing, per_turn=per_turn, **kwargs)
        self._lock = threading.Lock()

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        # The script already knows which tools it calls; binding changes nothing.
        return self

    def _step_index(self, messages: Sequence[BaseMessage]) -> int:
        if self.per_turn:
            replies = 0
            for message in reversed(messages):
                if isinstance(message, HumanMessage):
                    break
                replies += isinstance(message, AIMessage)
            return replies
        with self._lock:
            self.position += 1
            return self.position - 1

    def _next(self, messages: Sequence[BaseMessage]) -> AIMessage:
        index = self._step_index(messages)
        step = self.script[index] if index < len(self.script) else None
        if step is None:
            return AIMessage(content=self.closing)
        if isinstance(step, str):
            return AIMessage(content=step)
        message = step(messages) if callable(step) else step
        return message.model_copy(deep=True)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._next(messages))])
