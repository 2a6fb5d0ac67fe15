"""`postergenre serve` against requests no browser sends: raw sockets, then a bounded fuzz.

The server is a real process on a free port of 127.0.0.1 (its peak memory read from /proc),
serving the shared run's head model."""

import json
import os
import random
import re
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import BIN, tracking_uri

MB = 2**20


@pytest.fixture(scope="module")
def served(project, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(project / "src"),
        "MLFLOW_TRACKING_URI": tracking_uri(project),
    }
    with log.open("w") as err:
        proc = subprocess.Popen(
            [str(BIN / "postergenre"), "serve", "--model", "models/head", "--port", "0", "--timeout", "2"],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        line = proc.stdout.readline()
        port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", line).group(1))
        yield SimpleNamespace(proc=proc, port=port, log=log, host=f"127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def peak_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return b"".join(chunks)


def exchange(port: int, data: bytes, wait: float = 15.0) -> bytes:
    """Send the bytes, say nothing more follows, and read the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server closed first: its answer is still there to read
            pass
        return read_all(sock)


def read_answer(sock: socket.socket) -> bytes:
    """One HTTP answer: its headers, then as many bytes as its Content-Length says."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return head + b"\r\n\r\n" + rest


def status(answer: bytes) -> int | None:
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", answer)
    return int(m.group(1)) if m else None


def body(answer: bytes) -> dict:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


def post_head(host: str, *headers: str, path: str = "/api/explain") -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", *headers, "", ""]
    return "\r\n".join(lines).encode()


def test_malformed_requests_are_refused_before_their_bodies_are_read(served, project):
    before = peak_kb(served.proc.pid)
    cases = [  # (request bytes, status, words of the error)
        (post_head(served.host), 411, "Content-Length"),
        (post_head(served.host, "Transfer-Encoding: chunked") + b"5\r\nhello\r\n0\r\n\r\n", 411, "chunked"),
        (post_head(served.host, "Content-Length: abc"), 400, "not a number"),
        (post_head(served.host, "Content-Length: 1e3"), 400, "not a number"),
        (post_head(served.host, f"Content-Length: {60 * MB}"), 413, "60.0 MB"),
        (post_head(served.host, "Content-Length: 100") + b"only ten b", 400, "ended after 10"),
        (b"GET / HTTP/1.1\r\nHost: rebound.example.com\r\n\r\n", 403, "not this server's"),
        (b"GET /api/model HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 403, "not this server's"),
        (b"PUT / HTTP/1.1\r\nHost: rebound.example.com\r\n\r\n", 403, "not this server's"),
    ]
    # a request line that does not parse: a status line still, and the server goes on
    assert status(exchange(served.port, b"GARBAGE\r\n\r\n")) == 400
    for request, code, words in cases:
        answer = exchange(served.port, request)
        assert status(answer) == code, (request[:80], answer[:300])
        assert words in body(answer)["error"], (request[:80], answer[:300])

    # a negative length and 300 MB behind it: answered from the headers, the body never taken
    with socket.create_connection(("127.0.0.1", served.port), timeout=15) as sock:
        sock.sendall(post_head(served.host, "Content-Length: -1"))
        answer = read_answer(sock)
        pushed = 0
        try:
            while pushed < 300 * MB:
                sock.sendall(b"\xff" * MB)
                pushed += MB
        except OSError:  # the server closed the connection: what it had not read is dropped
            pass
    assert status(answer) == 400 and b"not a number" in answer
    assert pushed < 64 * MB  # it stopped at what the sockets buffer

    # a body sent after the answer to a wrong path is not read as a second request
    smuggled = b"GET /api/model HTTP/1.1\r\nHost: " + served.host.encode() + b"\r\n\r\n"
    answer = exchange(
        served.port, post_head(served.host, f"Content-Length: {len(smuggled)}", path="/nowhere") + smuggled
    )
    assert status(answer) == 404 and answer.count(b"HTTP/1.") == 1

    # a body that stops arriving: 408 after the server's --timeout (2 s)
    with socket.create_connection(("127.0.0.1", served.port), timeout=15) as sock:
        sock.sendall(post_head(served.host, "Content-Length: 1000") + b"0123456789")
        started = time.monotonic()
        answer = read_all(sock)
    assert status(answer) == 408 and time.monotonic() - started < 14
    # headers that stop arriving: the connection is closed, nothing else waits on it
    with socket.create_connection(("127.0.0.1", served.port), timeout=15) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: " + served.host.encode())
        assert read_all(sock) == b""

    assert peak_kb(served.proc.pid) - before < 50 * 1024
    # and it keeps serving: the names of this machine's loopback address, a real poster
    for host in (served.host, f"localhost:{served.port}"):
        answer = exchange(served.port, f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert status(answer) == 200
    poster = (project / "data/raw/synthetic/posters/1.jpg").read_bytes()
    answer = exchange(served.port, post_head(served.host, f"Content-Length: {len(poster)}") + poster)
    assert status(answer) == 200 and body(answer)["rows"]
    log = served.log.read_text()
    for line in (
        "POST /api/explain 413",
        "GET / 403",
        "POST /api/explain 408",
        "POST /nowhere 404",
        "POST /api/explain 200",
    ):
        assert re.search(re.escape(line) + r" \d+ B \d+ ms", log), line


def test_a_bounded_fuzz_leaves_the_server_alive_and_every_answer_valid(served):
    rng = random.Random(20190601)
    methods = ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "G\x00T", "get", "X" * 300]
    paths = [
        "/",
        "/browse",
        "/api/model",
        "/api/test?offset=-5&limit=999999",
        "/api/explain",
        "/api/heatmap/x/0",
        "/api/heatmap/../../etc/passwd/1",
        "/api/poster/%00.png",
        "/api/test?offset=abc",
        "//",
        "/" + "a" * 5000,
        "*",
        "/%ff%fe",
    ]
    hosts = [served.host, f"localhost:{served.port}", "evil.example", "", "127.0.0.1:1"]
    codes = []
    for _ in range(300):
        headers = []
        host = rng.choice(hosts)
        if host or rng.random() < 0.5:
            headers.append(f"Host: {host}")
        payload = bytes(rng.getrandbits(8) for _ in range(rng.choice([0, 1, 17, 300, 5000])))
        length = rng.choice(
            [str(len(payload)), "-7", "abc", str(len(payload) + 50), "0", "", str(10**12), None]
        )
        if length is not None:
            headers.append(f"Content-Length: {length}")
        if rng.random() < 0.1:
            headers.append("Transfer-Encoding: chunked")
        if rng.random() < 0.1:
            headers.append("X-Filename: " + "".join(rng.choice("ab%/\\.é") for _ in range(300)))
        if rng.random() < 0.05:
            headers += [f"X-{i}: {i}" for i in range(150)]
        head = "\r\n".join([f"{rng.choice(methods)} {rng.choice(paths)} HTTP/1.1", *headers, "", ""])
        answer = exchange(served.port, head.encode("utf-8", "surrogateescape") + payload)
        code = status(answer)
        assert code is not None and 100 <= code <= 599, (head[:200], answer[:200])
        codes.append(code)
    assert served.proc.poll() is None
    assert status(exchange(served.port, f"GET / HTTP/1.1\r\nHost: {served.host}\r\n\r\n".encode())) == 200
    assert len(set(codes)) >= 5  # the fuzz reached the refusals and the answers alike
