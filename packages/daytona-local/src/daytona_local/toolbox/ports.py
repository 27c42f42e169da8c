"""/toolbox/{id}/port...: the TCP ports something listens on inside the sandbox (`get_ports`, `is_port_in_use`).

The answer is the sandbox's own network namespace, read from its `/proc/net/tcp{,6}` by a command run
inside it, as the daemon reads its container's: a port the host listens on is not the sandbox's.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ..errors import DaemonError
from ..runtime import run_script
from ..sandboxes import HOME

router = APIRouter()
_LISTEN = "0A"  # the TCP state column of /proc/net/tcp
_READ_PORTS = b"cat /proc/net/tcp /proc/net/tcp6 2>/dev/null\n"
_TIMEOUT_SECONDS = 10.0


def listening_ports(proc_net_tcp: str) -> list[int]:
    """The local ports of the listening sockets in `/proc/net/tcp`-shaped text, ascending, once each."""
    ports: set[int] = set()
    for line in proc_net_tcp.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3] == _LISTEN and ":" in fields[1]:
            ports.add(int(fields[1].rpartition(":")[2], 16))
    return sorted(ports)


async def _sandbox_ports(request: Request, sandbox_id: str) -> list[int]:
    _, container = request.app.state.service.container_for(sandbox_id)
    _, output = await run_script(container, "/bin/sh", _READ_PORTS, cwd=HOME, env={}, timeout=_TIMEOUT_SECONDS)
    return listening_ports(output.decode("ascii", "replace"))


@router.get("/port")
async def ports(request: Request, sandbox_id: str) -> JSONResponse:
    return JSONResponse({"ports": await _sandbox_ports(request, sandbox_id)})


@router.get("/port/{port}/in-use")
async def port_in_use(request: Request, sandbox_id: str, port: str) -> JSONResponse:
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise DaemonError(400, f"bad request: invalid port {port[:16]!r}: a port is a number from 1 to 65535")
    return JSONResponse({"isInUse": int(port) in await _sandbox_ports(request, sandbox_id)})
