"""A real S3-protocol server for the tests: moto's server mode on 127.0.0.1, in its own process.

    python tests/s3server.py --port N [--put-delay SECONDS] [--deny-all]

`--put-delay` holds every upload that long (a push long enough to be killed half-way);
`--deny-all` answers every request as from unknown credentials (moto's IAM check with no user).
Prints "ready" once listening. Started and stopped by the fixtures in tests/test_team.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--put-delay", type=float, default=0.0)
    parser.add_argument("--deny-all", action="store_true")
    args = parser.parse_args()
    if args.deny_all:
        os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"  # before moto reads its settings
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)

    def slow(environ, start_response):
        if args.put_delay and environ.get("REQUEST_METHOD") == "PUT":
            time.sleep(args.put_delay)
        return app(environ, start_response)

    server = make_server("127.0.0.1", args.port, slow, threaded=True, request_handler=MotoRequestHandler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
