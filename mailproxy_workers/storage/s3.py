"""Amazon S3 and S3-compatible stores (MinIO, Ceph, moto) through boto3; presigned GET links."""

from __future__ import annotations

from typing import Any

from mailproxy_models.db import now

from ..attachments import FetchedAttachment
from . import StorageError, content_disposition, content_type

# SigV4 presigned URLs live at most seven days.
MAX_EXPIRY = 7 * 86400


class S3Storage:
    def __init__(self, bucket: str, prefix: str, options: dict[str, Any]) -> None:
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=options.get("endpoint_url"),
            region_name=options.get("region") or "us-east-1",
            aws_access_key_id=options.get("access_key_id"),
            aws_secret_access_key=options.get("secret_access_key"),
            aws_session_token=options.get("session_token"),
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": options.get("addressing_style") or "auto"},
                retries={"max_attempts": 3},
            ),
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def upload(self, key: str, attachment: FetchedAttachment) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        extra = {
            "ContentType": content_type(attachment),
            "ContentDisposition": content_disposition(attachment.filename),
        }
        try:
            if attachment.file is not None:
                attachment.file.seek(0)
                self.client.upload_fileobj(attachment.file, self.bucket, self._key(key), extra)
            else:
                self.client.put_object(
                    Bucket=self.bucket, Key=self._key(key), Body=attachment.read(), **extra
                )
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"S3 bucket {self.bucket}: {exc}") from exc

    def download_url(self, key: str, filename: str, expires_in: float) -> tuple[str, float]:
        seconds = int(min(expires_in, MAX_EXPIRY))
        url = self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self._key(key)},
            ExpiresIn=seconds,
        )
        return url, now() + seconds
