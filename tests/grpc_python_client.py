"""Drives the echo service of tests/grpc_driver.rs with Python grpcio (gRPC core, a real
client stack), using raw-bytes generic calls. Prints OK and exits 0 when every check passes."""
import sys

import grpc

port = int(sys.argv[1])
channel = grpc.insecure_channel(f"127.0.0.1:{port}")
identity = dict(request_serializer=None, response_deserializer=None)

unary = channel.unary_unary("/test.Echo/Unary", **identity)
assert unary(b"hello", timeout=10) == b"hello"
assert unary(b"", timeout=10) == b""
for _ in range(200):
    assert unary(b"again", timeout=10) == b"again"

try:
    unary(b"fail", timeout=10)
    raise AssertionError("fail must fail")
except grpc.RpcError as error:
    assert error.code() == grpc.StatusCode.NOT_FOUND, error
    assert error.details() == "no such thing: caf\u00e9 100%", error.details()

try:
    unary(b"sleep", timeout=0.2)
    raise AssertionError("sleep must time out")
except grpc.RpcError as error:
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, error

try:
    channel.unary_unary("/test.Echo/Missing", **identity)(b"x", timeout=10)
    raise AssertionError("unknown method must fail")
except grpc.RpcError as error:
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED, error
    assert error.details() == "unknown method /test.Echo/Missing", error.details()

stream = channel.unary_stream("/test.Echo/ServerStream", **identity)
messages = list(stream(b"24 500000", timeout=30))
assert len(messages) == 24
for index, message in enumerate(messages):
    assert message == bytes([index]) * 500000, index

upload = channel.stream_unary("/test.Echo/ClientStream", **identity)
parts = [b"first", bytes(range(256)) * 12000, b"", b"\x09" * 70000]
reply = upload(iter(parts), timeout=30)
checksum = 0
for part in parts:
    for byte in part:
        checksum = (checksum * 31 + byte) % (1 << 64)
assert reply == f"{len(parts)} {sum(map(len, parts))} {checksum}".encode(), reply

print("OK")
