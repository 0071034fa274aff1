"""A lean HTTP/1.1 load generator: C keep-alive connections, each sending its share of the
requests one after another (asyncio streams, no client library), so the load costs the machine
as little as possible next to what it measures."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Answers:
    statuses: Counter[int] = field(default_factory=Counter)
    bodies: list[Any] = field(default_factory=list)


async def _one_connection(
    host: str,
    port: int,
    method: str,
    path: str,
    token: str,
    bodies: Sequence[bytes],
    answers: Answers,
    keep_bodies: bool,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    try:
        for body in bodies:
            writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
            status = int((await reader.readline()).split(b" ", 2)[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            data = await reader.readexactly(length)
            answers.statuses[status] += 1
            if keep_bodies:
                answers.bodies.append(json.loads(data))
    finally:
        writer.close()


async def post_all(
    host: str,
    port: int,
    path: str,
    token: str,
    bodies: Sequence[bytes],
    connections: int,
    *,
    keep_bodies: bool = False,
) -> Answers:
    """POST every body, `connections` at a time (body i on connection i mod C)."""
    answers = Answers()
    shares = [bodies[i::connections] for i in range(connections)]
    await asyncio.gather(
        *(
            _one_connection(host, port, "POST", path, token, share, answers, keep_bodies)
            for share in shares
            if share
        )
    )
    return answers
