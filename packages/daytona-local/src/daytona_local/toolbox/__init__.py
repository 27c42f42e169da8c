"""The daemon's API, under /toolbox/{sandbox_id}: one module a concern, each an APIRouter.

process (exec, code-run, sessions), files, pty, interpreter (code interpreter contexts), git, lsp,
ports, upload_v2 (signed uploads), system (metrics); `ws` refuses WebSocket upgrades as the daemon does.
"""

from fastapi import APIRouter

from . import files, git, interpreter, lsp, ports, process, pty, system, upload_v2

# In the order they are matched: a route of an earlier router wins over a later one's.
ROUTERS: tuple[APIRouter, ...] = (
    process.router,
    files.router,
    pty.router,
    interpreter.router,
    git.router,
    lsp.router,
    ports.router,
    upload_v2.router,
    system.router,
)
