"""TensorBoard's event file writer, run in a child process: ``python event_writer.py LOGDIR``.

It reads serialized ``Event`` protos from standard input, each preceded by its length (4 bytes, little-endian),
and hands them to tensorboard's ``EventFileWriter`` until standard input closes. The training process only
serializes its events and writes them to a pipe (``ppo.tracking.RunLogger``): tensorboard's writer is Python
(serializing again, a CRC computed byte by byte, a file opened and closed per event) and runs in a thread of
whatever process holds it, so in the training process it took the interpreter lock from the training loop at
every event (docs/performance.md has the figures). This file imports tensorboard only, so the child starts
quickly, and it is run by path, not as part of the ``ppo`` package.
"""

from __future__ import annotations

import struct
import sys

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.summary.writer.event_file_writer import EventFileWriter

LENGTH = struct.Struct("<I")


def frame(event: Event) -> bytes:
    """An event as this writer reads it from its standard input."""
    data = event.SerializeToString()
    return LENGTH.pack(len(data)) + data


def write_events(logdir: str, stream) -> None:
    writer = EventFileWriter(logdir)
    try:
        while len(header := stream.read(LENGTH.size)) == LENGTH.size:
            (size,) = LENGTH.unpack(header)
            data = stream.read(size)
            if len(data) < size:  # the training process ended mid-event
                break
            writer.add_event(Event.FromString(data))
    finally:
        writer.close()


if __name__ == "__main__":
    write_events(sys.argv[1], sys.stdin.buffer)
