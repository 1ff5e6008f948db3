#!/usr/bin/env python3
"""Serves moto's S3 on loopback for the object-store tests, on a port the system picks.

    python tests/py/moto_server.py

prints `port N` once the server listens, then serves until its standard input closes (the
test harness holds the other end, so the server ends with the test process, even a killed one).
"""

import os
import sys
import threading

from moto.s3.responses import S3Response
from moto.server import ThreadedMotoServer


def serialise_puts():
    """moto checks `If-None-Match: *` and then stores the object, with other requests' threads free
    to run between the two: two writers of one commit file could both succeed. AWS S3 decides a
    conditional write atomically; one PutObject at a time does here."""
    lock = threading.Lock()
    put = S3Response.put_object

    def put_object(self, *args, **kwargs):
        with lock:
            return put(self, *args, **kwargs)

    S3Response.put_object = put_object


def main():
    serialise_puts()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    sys.stdout.write(f"port {port}\n")
    sys.stdout.flush()
    sys.stdin.read()
    # Threads may still hold requests; the process leaves without waiting for them.
    os._exit(0)


if __name__ == "__main__":
    main()
