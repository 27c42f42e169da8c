"""Choosing the chat model: any LangChain model by `provider:name`, or the offline scripted one.

`--model openai:gpt-4.1` (any `init_chat_model` spec) is used when the provider's API key is in the
environment. Without a model or a key the agent runs on `offline_model()`: a scripted model,
labelled as such wherever it is used, that issues the tool calls a real model would for a small
task, so the whole path (agent loop, tools, sandboxes, volume) runs offline.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from deepagents_daytona.demo.scripted_model import ScriptedChatModel, tool_call

OFFLINE_LABEL = "scripted offline model (no LLM): replays realistic tool calls"

PROVIDER_KEYS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google_genai": "GOOGLE_API_KEY",
    "google_vertexai": "GOOGLE_APPLICATION_CREDENTIALS",
    "mistralai": "MISTRAL_API_KEY",
    "groq": "GROQ_API_KEY",
    "fireworks": "FIREWORKS_API_KEY",
    "together": "TOGETHER_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "xai": "XAI_API_KEY",
}


@dataclass(frozen=True)
class ChosenModel:
    model: BaseChatModel
    label: str


def _request(messages: Sequence[BaseMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return str(message.content)
    return ""


def offline_model(workspace: str) -> ScriptedChatModel:
    """Per turn: note the request in the workspace, run code, look around, edit the note, answer.

    Paths are absolute, as deepagents' file tools expect (they treat every path as absolute)."""
    notes = f"{workspace}/notes.md"

    def write_request(messages: Sequence[BaseMessage]) -> AIMessage:
        return tool_call("write_file", file_path=notes, content=f"# Request\n\n{_request(messages)}\n")

    script = [
        write_request,
        tool_call(
            "execute",
            command="python3 -c 'import platform, sys; print(platform.node(), sys.version.split()[0])' && ls -la",
        ),
        tool_call("read_file", file_path=notes),
        tool_call("edit_file", file_path=notes, old_string="# Request", new_string="# Request (handled)"),
        tool_call("grep", pattern="handled", path=workspace),
        "I wrote your request to notes.md in my workspace, ran Python in my sandbox, and marked the note as "
        "handled. (This answer comes from the scripted offline model; pass --model provider:name with its API "
        "key set to use a real LLM.)",
    ]
    return ScriptedChatModel(script, per_turn=True)


def choose_model(spec: str | None, workspace: str) -> ChosenModel:
    """The model for `spec`, or the offline one when there is no spec or no key for its provider."""
    if not spec:
        return ChosenModel(offline_model(workspace), OFFLINE_LABEL)
    provider = spec.split(":", 1)[0] if ":" in spec else None
    key = PROVIDER_KEYS.get(provider or "")
    if key is not None and not os.environ.get(key):
        label = f"{OFFLINE_LABEL} ({key} is not set, so {spec} cannot be used)"
        return ChosenModel(offline_model(workspace), label)
    from langchain.chat_models import init_chat_model

    return ChosenModel(init_chat_model(spec), spec)
