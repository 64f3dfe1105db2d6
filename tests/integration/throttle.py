#!/usr/bin/env python3
"""A slow link on loopback: forwards TCP from 127.0.0.1:LISTEN to 127.0.0.1:TARGET, each direction
limited to RATE bytes per second (the test's stand-in for a gateway's slow uplink to its registry).
Usage: throttle.py LISTEN TARGET RATE   (runs until killed; prints "ready" once it listens)"""
import asyncio, sys, time

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
    try:
        ureader, uwriter = await asyncio.open_connection("127.0.0.1", TARGET)
    except OSError:
        cwriter.close()
        return
    await asyncio.gather(pipe(creader, uwriter), pipe(ureader, cwriter))


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
