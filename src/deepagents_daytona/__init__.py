"""deepagents-daytona: one Daytona sandbox per LangGraph thread, for Deep Agents and LangGraph.

from deepagents import create_deep_agent
from deepagents_daytona import SandboxWarmStart, ThreadSandboxBackend, ThreadCleanupCheckpointer

agent = create_deep_agent(model=..., backend=ThreadSandboxBackend(),
                          checkpointer=ThreadCleanupCheckpointer(InMemorySaver()),
                          middleware=[SandboxWarmStart()])
"""

from importlib.metadata import version

from deepagents_daytona.agent import create_sandbox_agent
from deepagents_daytona.client import get_async_daytona, get_daytona, reset_clients
from deepagents_daytona.config import DaytonaSettings, SettingsError, get_settings
from deepagents_daytona.demo.scripted_model import ScriptedChatModel, tool_call
from deepagents_daytona.errors import SandboxError, SandboxGoneError, SandboxUnavailableError
from deepagents_daytona.lifecycle import ReapDecision, ThreadCleanupCheckpointer, reap
from deepagents_daytona.manager import ManagedSandbox, SandboxManager, get_sandbox_manager, set_sandbox_manager
from deepagents_daytona.sandbox import DaytonaSandboxBackend
from deepagents_daytona.thread_backend import ThreadNotResolvedError, ThreadSandboxBackend
from deepagents_daytona.tools import sandbox_tools
from deepagents_daytona.warm_start import SandboxWarmStart

__version__ = version("deepagents-daytona")

__all__ = [
    "DaytonaSandboxBackend",
    "DaytonaSettings",
    "ManagedSandbox",
    "ReapDecision",
    "SandboxError",
    "SandboxGoneError",
    "SandboxManager",
    "SandboxUnavailableError",
    "SandboxWarmStart",
    "ScriptedChatModel",
    "SettingsError",
    "ThreadCleanupCheckpointer",
    "ThreadNotResolvedError",
    "ThreadSandboxBackend",
    "__version__",
    "create_sandbox_agent",
    "get_async_daytona",
    "get_daytona",
    "get_sandbox_manager",
    "get_settings",
    "reap",
    "reset_clients",
    "sandbox_tools",
    "set_sandbox_manager",
    "tool_call",
]
