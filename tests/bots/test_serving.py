"""``tenantry serve`` through ``bots.serving``: it serves, refuses what the parser
rejects without echoing it, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

TENANTRY = str(Path(sys.executable).parent / "tenantry")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_serve_answers_stops_on_sigterm_and_never_echoes_a_bad_header(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {**os.environ, "TENANTRY_DATABASE_URL": f"sqlite:///{tmp_path / 't.db'}",
           "TENANTRY_DATA_DIR": str(tmp_path / "data"), "TENANTRY_MODEL": "sandbox",
           "TENANTRY_EMBEDDER": "hashing", "TENANTRY_PORT": str(port)}
    migrate = await asyncio.create_subprocess_exec(
        TENANTRY, "db", "upgrade", env=env, cwd=tmp_path)
    assert await migrate.wait() == 0
    served = await asyncio.create_subprocess_exec(
        TENANTRY, "serve", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as health:
                        assert health.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("tenantry serve did not start")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: S3CRET\x01\r\n\r\n")
        answer = await reader.read()
        writer.close()
        assert answer.startswith(b"HTTP/1.0 400") or answer.startswith(b"HTTP/1.1 400")
        assert b"S3CRET" not in answer
    finally:
        served.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(served.communicate(), 30)
    assert served.returncode == 0, err.decode()[-2000:]
    logged = err.decode()
    assert "http request rejected by the parser" in logged
    assert "S3CRET" not in logged and "Traceback" not in logged
