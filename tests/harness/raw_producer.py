"""A raw Kafka client for what third-party clients do not show: an idempotent producer whose
producer id and sequences the test chooses (InitProducerId v1 and Produce v5 framed by hand,
record batches encoded by kafka-python), and IncrementalAlterConfigs v0 of the cluster-default
broker resource (which confluent-kafka's AdminClient cannot name)."""
import socket
import struct
import time

NONE = 0
NOT_LEADER_OR_FOLLOWER = 6
INVALID_CONFIG = 40
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
CLIENT_ID = b"producer-reset-check"


def _read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "connection closed by the broker"
        data += chunk
    return data


def _string(text):
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


def call(bootstrap, api_key, version, body):
    """One request (header v1) on a fresh connection to the first bootstrap address; the
    response body after its correlation id."""
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    msg = struct.pack(">hhih", api_key, version, 7, len(CLIENT_ID)) + CLIENT_ID + body
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(struct.pack(">i", len(msg)) + msg)
        (size,) = struct.unpack(">i", _read_exactly(s, 4))
        response = _read_exactly(s, size)
    (correlation,) = struct.unpack_from(">i", response)
    assert correlation == 7, correlation
    return response[4:]


def init_producer_id(bootstrap):
    """(producer id, epoch) from InitProducerId v1 without a transactional id."""
    body = call(bootstrap, 22, 1, struct.pack(">hi", -1, 60000))
    _throttle, error, pid, epoch = struct.unpack_from(">ihqh", body)
    assert error == NONE, f"InitProducerId error {error}"
    return pid, epoch


def produce_idempotent(bootstrap, topic, pid, epoch, sequence, count):
    """One batch of ``count`` records of producer ``pid`` starting at ``sequence`` to partition 0
    of ``topic`` on the broker at ``bootstrap``, acks=all: (error code, base offset)."""
    from kafka.record.default_records import DefaultRecordBatchBuilder
    batch = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=pid,
                                      producer_epoch=epoch, base_sequence=sequence, batch_size=1 << 20)
    now = int(time.time() * 1000)
    for i in range(count):
        batch.append(i, timestamp=now, key=None, value=f"{pid}-{sequence + i}".encode(), headers=[])
    records = bytes(batch.build())
    body = (struct.pack(">hhi", -1, -1, 30000) + struct.pack(">i", 1) + _string(topic)
            + struct.pack(">iii", 1, 0, len(records)) + records)
    response = call(bootstrap, 0, 5, body)
    (topics,) = struct.unpack_from(">i", response)
    (name_len,) = struct.unpack_from(">h", response, 4)
    at = 6 + name_len
    (partitions,) = struct.unpack_from(">i", response, at)
    assert (topics, partitions) == (1, 1), (topics, partitions)
    _index, error, base_offset = struct.unpack_from(">ihq", response, at + 4)
    return error, base_offset


def incremental_alter_cluster_default(bootstrap, ops):
    """IncrementalAlterConfigs v0 of the cluster-default broker resource with ``ops`` as
    (name, operation, value): (error code, error message)."""
    body = struct.pack(">ib", 1, 4) + _string("") + struct.pack(">i", len(ops))
    for name, op, value in ops:
        body += _string(name) + struct.pack(">b", op) + (_string(value) if value is not None else struct.pack(">h", -1))
    body += struct.pack(">?", False)
    response = call(bootstrap, 44, 0, body)
    _throttle, count, error, message_len = struct.unpack_from(">iihh", response)
    assert count == 1, count
    message = response[12:12 + message_len].decode() if message_len >= 0 else None
    return error, message
