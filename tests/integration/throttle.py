#!/usr/bin/env python3
"""A slow link on loopback: forwards TCP from 127.0.0.1:LISTEN to 127.0.0.1:TARGET, each direction
limited to RATE bytes per second (the test's stand-in for a gateway's slow uplink to its registry).
Usage: throttle.py LISTEN TARGET RATE   (runs until killed; prints "ready" once it listens)"""
import asyncio, socket, sys, time

LISTEN, TARGET, RATE = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
CHUNK = 16384


async def pipe(reader, writer):
    start, sent = time.monotonic(), 0
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
            sent += len(data)
            ahead = sent / RATE - (time.monotonic() - start)
            if ahead > 0:
                await asyncio.sleep(ahead)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def handle(creader, cwriter):
    # small socket buffers on both sides: what the far end wrote before it died is not
    # all sitting in the kernel, so cutting it cuts the transfer as a real link would
    up = socket.socket()
    up.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    cwriter.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    try:
        up.setblocking(False)
        await asyncio.get_running_loop().sock_connect(up, ("127.0.0.1", TARGET))
        ureader, uwriter = await asyncio.open_connection(sock=up)
    except OSError:
        up.close()
        cwriter.close()
        return
    await asyncio.gather(pipe(creader, uwriter), pipe(ureader, cwriter))


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
