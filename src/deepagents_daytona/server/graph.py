"""What the Agent Server runtime loads for `deepagents-daytona serve`: the graph and its checkpointer.

`serve()` names them in the runtime's configuration (`graphs` and `checkpointer.path`), as a
`langgraph.json` would: `deepagents_daytona.server.graph:agent` and `...:checkpointer`. Both read
`ServerSettings` from the environment, which `serve()` fills in.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from deepagents_daytona.agent import create_sandbox_agent
from deepagents_daytona.demo.models import choose_model
from deepagents_daytona.lifecycle import ThreadCleanupCheckpointer
from deepagents_daytona.manager import get_sandbox_manager
from deepagents_daytona.server.settings import ServerSettings

logger = logging.getLogger(__name__)

_settings = ServerSettings.from_env()
_chosen = choose_model(_settings.model, get_sandbox_manager().settings.workspace_path)
logger.info("model: %s", _chosen.label)

agent = create_sandbox_agent(_chosen.model, interrupt_on=_settings.interrupt_tools or None)
"""The deep agent; the runtime gives it the checkpointer below and the run's thread id."""


@contextlib.asynccontextmanager
async def checkpointer() -> AsyncIterator[ThreadCleanupCheckpointer]:
    """Checkpoints in SQLite under the data dir; deleting a thread (by any path) destroys its sandbox."""
    path = _settings.checkpoints_path
    path.parent.mkdir(parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        await saver.setup()
        yield ThreadCleanupCheckpointer(saver)
