"""The OPC UA server worker's stdin: the daemon's lines read a chunk at a time through a real pipe,
whatever the chunk boundaries (mid-line, mid-UTF-8 character), in order."""

from __future__ import annotations

import asyncio
import os

import orjson

from gateway.outputs.opcua_server.worker import read_lines


async def _read(pieces: list[bytes]) -> list[dict]:
    loop = asyncio.get_running_loop()
    read_fd, write_fd = os.pipe()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader),
                                                os.fdopen(read_fd, "rb", 0))
    got: list[dict] = []

    async def consume() -> None:
        async for batch in read_lines(reader):
            got.extend(batch)

    task = asyncio.create_task(consume())
    for piece in pieces:
        os.write(write_fd, piece)
        await asyncio.sleep(0.01)  # each piece arrives on its own, so a read can end mid-line
    os.close(write_fd)
    await asyncio.wait_for(task, 10)
    transport.close()
    return got


def test_lines_cut_anywhere_arrive_whole_and_in_order() -> None:
    messages = [{"type": "measurement", "measurement": {"measurement_value": i / 3, "note": "직경 ✓"}}
                for i in range(200)] + [{"ctl": "sources", "connected": 2}]
    data = b"".join(orjson.dumps(m) + b"\n" for m in messages)
    pieces = [data[i:i + 37] for i in range(0, len(data), 37)]  # 37: cuts lines and UTF-8 characters
    assert asyncio.run(_read(pieces)) == messages


def test_blank_lines_are_skipped_and_a_last_line_without_newline_is_kept() -> None:
    assert asyncio.run(_read([b'{"a": 1}\n\n\n{"b"', b': 2}\n{"c": 3}'])) == [{"a": 1}, {"b": 2}, {"c": 3}]
