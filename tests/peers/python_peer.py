"""A Python `websockets` peer with permessage-deflate on, for interop tests.

  python3 python_peer.py server          echo server; prints its port
  python3 python_peer.py client URL      sends messages, checks the echoes,
                                         prints one JSON line of results
"""

import asyncio
import json
import os
import sys

import websockets

SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20]


async def echo(websocket, path=None):
    try:
        async for message in websocket:
            await websocket.send(message)
    except websockets.ConnectionClosed:
        pass


async def server():
    async with websockets.serve(
        echo, "127.0.0.1", 0, compression="deflate", max_size=32 << 20
    ) as srv:
        port = srv.sockets[0].getsockname()[1]
        print(port, flush=True)
        # Until stdin closes: the test owns our lifetime.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def client(url):
    results = {"extensions": None, "checked": 0, "failures": []}
    async with websockets.connect(
        url, compression="deflate", max_size=32 << 20
    ) as ws:
        results["extensions"] = ws.response_headers.get(
            "Sec-WebSocket-Extensions"
        )
        for size in SIZES:
            text = ("{\"k\": \"vé€\"} " * (size // 12 + 1))[:size]
            data = os.urandom(size)
            for message in (text, data):
                await ws.send(message)
                reply = await ws.recv()
                if reply != message:
                    results["failures"].append(
                        f"{type(message).__name__} {size}"
                    )
                results["checked"] += 1
        await ws.close(code=4000, reason="python done")
        results["close"] = [ws.close_code, ws.close_reason]
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        asyncio.run(server())
    else:
        asyncio.run(client(sys.argv[2]))
