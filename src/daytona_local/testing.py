"""`LocalServer`: a daytona_local on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

import tempfile
from pathlib import Path

from pydantic import SecretStr

from .server import BackgroundServer
from .settings import ServerSettings


class LocalServer(BackgroundServer):
    """`with LocalServer() as srv:` gives `srv.api_url`, `srv.api_key` and `srv.request_count`."""

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        api_key: str = "dtn_test_key",
        latency_ms: float = 0.0,
        fault_rate: float = 0.0,
        fault_seed: int = 0,
        **settings: object,
    ) -> None:
        self._tmp = None if data_dir is not None else tempfile.TemporaryDirectory(prefix="daytona-local-")
        super().__init__(
            ServerSettings(
                host="127.0.0.1",
                port=0,
                data_dir=Path(data_dir if data_dir is not None else self._tmp.name),  # type: ignore[union-attr]
                api_key=SecretStr(api_key),
                latency_ms=latency_ms,
                fault_rate=fault_rate,
                fault_seed=fault_seed,
                **settings,
            )
        )

    @property
    def request_count(self) -> int:
        return self.counter.value

    def stop(self) -> None:
        super().stop()
        if self._tmp is not None:
            self._tmp.cleanup()
