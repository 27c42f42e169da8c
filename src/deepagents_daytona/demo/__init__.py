"""What lets the plugin run with no model key: the labelled offline model, and the quickstart.

- `models`: `choose_model()`, an `init_chat_model` spec when its key is set, else `offline_model()`;
- `scripted_model`: `ScriptedChatModel`, a chat model that replays tool calls (tests, demos);
- `quickstart`: `deepagents-daytona demo` and `examples/quickstart.py`.
"""

from deepagents_daytona.demo.models import ChosenModel, choose_model, offline_model
from deepagents_daytona.demo.scripted_model import ScriptedChatModel, tool_call

__all__ = ["ChosenModel", "ScriptedChatModel", "choose_model", "offline_model", "tool_call"]
