"""check-remote: can this repository's DVC remote be used? Asked once, answered in seconds.

`dvc push` / `dvc pull` against a remote that cannot be used retry every object with backoff: an
endpoint with nothing listening keeps them busy for many minutes before they give up. This asks
the remote once (one HEAD of the bucket, 5 s to connect, no retries) and says which of the usual
problems it is: no server at the endpoint, no such bucket, refused or missing credentials.
`make push` and `make pull` run it first. No stage runs this module.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any
from urllib.parse import urlparse

from postergenre.runtime import entry

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 15


def remote_config(name: str | None = None, repo: str = ".") -> tuple[str, dict[str, Any]]:
    """(name, settings) of the named remote, or the default one, as DVC resolves its config
    files (`.dvc/config`, then `.dvc/config.local`)."""
    from dvc.repo import Repo

    config = Repo(repo).config
    remotes = config.get("remote", {})
    name = name or config.get("core", {}).get("remote")
    if not name:
        raise ValueError(
            "this repository has no default DVC remote: `dvc remote add -d NAME URL` (docs/team.md)"
        )
    if name not in remotes:
        raise ValueError(f"no DVC remote named {name!r} (there are: {', '.join(remotes) or 'none'})")
    return name, dict(remotes[name])


def check_s3(name: str, settings: dict[str, Any]) -> str:
    """One HEAD of the remote's bucket; a ValueError saying what is wrong, else a summary."""
    import boto3
    import botocore.exceptions as bx
    from botocore.config import Config

    url = urlparse(settings["url"])
    bucket, endpoint = url.netloc, settings.get("endpointurl")
    where = f"remote {name!r} ({settings['url']}{' at ' + endpoint if endpoint else ''})"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=settings.get("region") or os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        aws_access_key_id=settings.get("access_key_id"),
        aws_secret_access_key=settings.get("secret_access_key"),
        config=Config(
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=READ_TIMEOUT_S,
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )
    try:
        client.head_bucket(Bucket=bucket)
    except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError) as exc:
        raise ValueError(
            f"{where}: no answer from the server ({exc}); check `endpointurl` and that the server is up"
        ) from None
    except bx.NoCredentialsError:
        raise ValueError(
            f"{where}: no credentials; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or `dvc remote modify --local`)"
        ) from None
    except bx.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("404", "NoSuchBucket") or status == 404:
            raise ValueError(
                f"{where}: the bucket {bucket!r} does not exist; create it or fix the remote's URL"
            ) from None
        if code in ("403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied") or status == 403:
            raise ValueError(
                f"{where}: the credentials were refused ({code or status}); check "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
            ) from None
        raise ValueError(f"{where}: {code or status}: {exc}") from None
    return f"{where}: reachable, bucket {bucket!r} there, credentials accepted"


def check_remote(name: str | None = None, repo: str = ".") -> str:
    name, settings = remote_config(name, repo)
    scheme = urlparse(settings["url"]).scheme
    if scheme != "s3":
        return f"remote {name!r} ({settings['url']}): only S3 remotes are checked here"
    return check_s3(name, settings)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "remote", nargs="?", default=None, help="a DVC remote's name (default: the default remote)"
    )


NEEDS_PARAMS = False


def run(args: argparse.Namespace, params: dict | None) -> None:
    log.info("%s", check_remote(args.remote))


if __name__ == "__main__":
    sys.exit(entry.main("remote", __doc__, add_arguments, run, needs_params=False))
