"""Create Tollgate's bucket in the S3 server unless it exists (docker-compose.yml runs this once
before the replicas start). Reads the same TOLLGATE_STORAGE_S3_* variables as `tollgate serve`
and waits up to a minute for the S3 server to answer."""

import os
import sys
import time

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError


def main() -> int:
    env = os.environ
    bucket = env["TOLLGATE_STORAGE_S3_BUCKET"]
    s3 = boto3.client(
        "s3",
        endpoint_url=env.get("TOLLGATE_STORAGE_S3_ENDPOINT_URL") or None,
        region_name=env.get("TOLLGATE_STORAGE_S3_REGION") or "us-east-1",
        aws_access_key_id=env.get("TOLLGATE_STORAGE_S3_ACCESS_KEY_ID") or None,
        aws_secret_access_key=env.get("TOLLGATE_STORAGE_S3_SECRET_ACCESS_KEY") or None,
        config=Config(s3={"addressing_style": env.get("TOLLGATE_STORAGE_S3_ADDRESSING_STYLE",
                                                      "path")},
                      retries={"mode": "standard"}, connect_timeout=5, read_timeout=30),
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            s3.head_bucket(Bucket=bucket)
            print(f"bucket {bucket} exists")
            return 0
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                problem = e
            else:
                try:
                    s3.create_bucket(Bucket=bucket)
                    print(f"bucket {bucket} created")
                    return 0
                except ClientError as create_error:
                    problem = create_error
        except BotoCoreError as e:  # not answering yet
            problem = e
        if time.monotonic() > deadline:
            print(f"cannot create bucket {bucket}: {problem}", file=sys.stderr)
            return 1
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
