#!/usr/bin/env python3
"""GET /_ping on Docker API unix sockets, for the density suite and benchmark.

  density_ping.py check SOCK...            each answers OK now (exit 1 naming those that do not)
  density_ping.py wait SECS SINCE SOCK...  poll every millisecond until all answer OK;
                                           print the seconds from SINCE (a time.time()
                                           value) to the last one's first OK, and exit 1
                                           when SECS pass first
  density_ping.py at SECS SOCK...          the same, printing "polling" once it polls,
                                           then the time.time() of that OK: started
                                           before what it times, so that this
                                           interpreter's own start is not timed
"""
import socket
import sys
import time


def ping(path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(path)
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            return head.split(b" ", 2)[1:2] == [b"200"] and body.strip() == b"OK"
    except OSError:
        return False


def until(limit, waiting):
    """Polls every millisecond until every socket in WAITING has answered OK;
    returns the time.time() of the last first OK (exit 1 after LIMIT seconds)."""
    deadline = time.time() + limit
    while waiting:
        waiting = {p for p in waiting if not ping(p)}
        if waiting:
            if time.time() > deadline:
                sys.exit(f"{len(waiting)} not answering after {limit}s: " + " ".join(sorted(waiting)))
            time.sleep(0.001)
    return time.time()


def main(argv):
    if len(argv) >= 2 and argv[0] == "check":
        bad = [p for p in argv[1:] if not ping(p)]
        if bad:
            sys.exit("no answer from: " + " ".join(bad))
        return
    if len(argv) >= 4 and argv[0] == "wait":
        print(f"{until(float(argv[1]), set(argv[3:])) - float(argv[2]):.3f}")
        return
    if len(argv) >= 3 and argv[0] == "at":
        print("polling", flush=True)
        print(f"{until(float(argv[1]), set(argv[2:])):.6f}")
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
