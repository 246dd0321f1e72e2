"""Produced batches whose CRC is right but whose records are not what their counts and lengths
claim, on a plain (delete-policy) topic, uncompressed and compressed: a record count above or
below the records present, a huge record count, bytes after the last record, a record length
beyond the batch, a header count huge or negative, a header key running past its record, an
offset range that does not match the count. Kafka reads every record before appending and
answers INVALID_RECORD; Strata must answer the same and store nothing of it, while a good batch
right after is stored. Both brokers get the same bytes (built here by hand, CRC-32C computed).

One difference is kept on purpose: in a compressed batch Kafka 4.1 reads records with its
skip-key-value iterator, which does not check a record's declared length against its fields, so
it stores such a batch (and its own consumers then fail on it); Strata refuses it there too."""
from __future__ import annotations

import gzip
import socket
import struct
import time

import pytest
import zstandard
from kafka.record.util import calc_crc32c, encode_varint

from harness import unique_topic
from scenarios import create_topic

INVALID_RECORD = 87
GZIP, ZSTD = 1, 4


def _varint(v):
    out = bytearray()
    encode_varint(v, out.append)
    return bytes(out)


def _record(fields, length=None):
    return _varint(len(fields) if length is None else length) + fields


def _fields(headers=b"\x00"):
    """attributes, timestamp delta, offset delta, key "k", value "v", then ``headers`` raw."""
    return b"\x00" + _varint(0) + _varint(0) + _varint(1) + b"k" + _varint(1) + b"v" + headers


GOOD = _record(_fields())
# Cases Kafka does not check inside compressed batches (see the module docstring).
LENGTH_CASES = {"record length beyond the batch", "record length short of its fields"}

CASES = {
    "record count above the records": (GOOD, 2),
    "huge record count": (GOOD, 0x7FFFFFFF),
    "record count below the records": (GOOD + GOOD, 1),
    "bytes after the last record": (GOOD + b"\x00\x00", 1),
    "record length beyond the batch": (_record(_fields(), length=100), 1),
    "record length short of its fields": (_record(_fields(), length=3), 1),
    "huge header count": (_record(_fields(_varint(0x1FFFFFFF))), 1),
    "negative header count": (_record(_fields(_varint(-1))), 1),
    "header key beyond its record": (_record(_fields(_varint(1) + _varint(20) + b"h")), 1),
}


def _batch(records, count, *, codec=0, last_offset_delta=None):
    if codec == GZIP:
        records = gzip.compress(records)
    elif codec == ZSTD:
        records = zstandard.ZstdCompressor().compress(records)
    delta = count - 1 if last_offset_delta is None else last_offset_delta
    now = int(time.time() * 1000)
    after_crc = struct.pack(">hiqqqhii", codec, delta, now, now, -1, -1, -1, count) + records
    return struct.pack(">qiib", 0, 9 + len(after_crc), -1, 2) + struct.pack(">I", calc_crc32c(after_crc)) \
        + after_crc


def _read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "the broker closed the connection"
        data += chunk
    return data


# Answers that mean nothing was appended and a client sends again: a new topic's partition is in
# Kafka's metadata a moment before its replica manager leads it.
RETRIABLE = {3, 5, 6}  # UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER


def _produce(bootstrap, topic, batch, timeout=30):
    """Produce v7, acks=all, one batch to partition 0: the partition's error code. A retriable
    answer is sent again, as a client would, until ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while True:
        error = _produce_once(bootstrap, topic, batch)
        if error not in RETRIABLE or time.monotonic() > deadline:
            return error
        time.sleep(0.1)


def _produce_once(bootstrap, topic, batch):
    """Produce v7, acks=all, one batch to partition 0: the partition's error code."""
    host, port = bootstrap.rsplit(":", 1)
    name = topic.encode()
    body = struct.pack(">hhi", -1, -1, 30000) + struct.pack(">i", 1) + struct.pack(">h", len(name)) + name \
        + struct.pack(">ii", 1, 0) + struct.pack(">i", len(batch)) + batch
    client = b"corrupt-records"
    msg = struct.pack(">hhih", 0, 7, 7, len(client)) + client + body
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(struct.pack(">i", len(msg)) + msg)
        (size,) = struct.unpack(">i", _read_exactly(s, 4))
        resp = _read_exactly(s, size)
    at = 4 + 4  # correlation id, topics array
    (name_len,) = struct.unpack_from(">h", resp, at)
    at += 2 + name_len + 4  # name, partitions array
    _index, error = struct.unpack_from(">ih", resp, at)
    return error


@pytest.mark.parametrize("codec", [0, GZIP, ZSTD], ids=["none", "gzip", "zstd"])
def test_records_unlike_their_counts_get_invalid_record(broker, target_kind, codec):
    topic = unique_topic("corrupt-records")
    create_topic(broker.bootstrap, topic, 1)
    got = {what: _produce(broker.bootstrap, topic, _batch(records, count, codec=codec))
           for what, (records, count) in CASES.items()}
    got["offset range of 6 for 1 record"] = _produce(
        broker.bootstrap, topic, _batch(GOOD, 1, codec=codec, last_offset_delta=5))
    stored = 0
    if target_kind == "kafka" and codec:
        for what in LENGTH_CASES:
            code = got.pop(what)
            stored += code == 0
            print(f"kafka, codec {codec}, {what}: error code {code}")
    assert got == {what: INVALID_RECORD for what in got}, got
    # Nothing refused was stored: the good batch after it is the only other record.
    assert _produce(broker.bootstrap, topic, _batch(GOOD, 1, codec=codec)) == 0
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": unique_topic("g")})
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, stored + 1)
    finally:
        c.close()
