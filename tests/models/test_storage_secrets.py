"""Storage credentials in a tenant's large_file_config: checked, stored encrypted, shown
masked, kept when the mask is sent back, and re-encrypted by a key rotation."""

from __future__ import annotations

import os

import pytest

from mailproxy_models.db import session_scope
from mailproxy_models.errors import InvalidInput
from mailproxy_models.key_rotation import count_stale_secrets, reencrypt_secrets
from mailproxy_models.secrets_box import SecretBox
from mailproxy_models.tenants import create_tenant, get_tenant, tenant_record, update_tenant
from tests.models.factories import database

CONFIG = {
    "enabled": True,
    "max_size_mb": 5,
    "action": "rewrite",
    "storage_url": "s3://bucket/mail",
    "storage_options": {"access_key_id": "AKIA1", "secret_access_key": "s3cr3t"},
}


def test_secrets_are_encrypted_masked_and_kept_when_the_mask_comes_back(sqlite_url):
    box = SecretBox(os.urandom(32))
    with database(sqlite_url) as sessions, session_scope(sessions) as session:
        tenant = create_tenant(session, box, {"id": "acme", "large_file_config": CONFIG})
        stored = tenant.large_file_config["storage_options"]
        assert "secret_access_key" not in stored and "s3cr3t" not in str(stored)
        assert box.decrypt(stored["secret_access_key_enc"]) == "s3cr3t"
        shown = tenant_record(tenant)["large_file_config"]["storage_options"]
        assert shown == {"access_key_id": "AKIA1", "secret_access_key": "***"}
        again = {**CONFIG, "max_size_mb": 8, "storage_options": shown}
        tenant = update_tenant(session, box, "acme", {"large_file_config": again})
        options = tenant.large_file_config["storage_options"]
        assert box.decrypt(options["secret_access_key_enc"]) == "s3cr3t"
        assert tenant.large_file_config["max_size_mb"] == 8


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"action": "delete"}, "action"),
        ({"max_size_mb": -1}, "max_size_mb"),
        ({"storage_url": "ftp://x"}, "storage_url"),
        ({"storage_options": "key=value"}, "storage_options"),
    ],
)
def test_an_invalid_config_is_refused_naming_the_field(sqlite_url, change, field):
    box = SecretBox(os.urandom(32))
    with database(sqlite_url) as sessions, session_scope(sessions) as session:
        with pytest.raises(InvalidInput) as caught:
            create_tenant(session, box, {"id": "acme", "large_file_config": {**CONFIG, **change}})
        assert f"large_file_config.{field}" in str(caught.value)


def test_key_rotation_re_encrypts_storage_credentials(sqlite_url):
    old, new = os.urandom(32), os.urandom(32)
    with database(sqlite_url) as sessions:
        with session_scope(sessions) as session:
            create_tenant(session, SecretBox(old), {"id": "acme", "large_file_config": CONFIG})
        rotated = SecretBox(new, [old])
        with session_scope(sessions) as session:
            assert count_stale_secrets(session, rotated) == 1
            assert reencrypt_secrets(session, rotated) == 1
        with session_scope(sessions) as session:
            assert count_stale_secrets(session, rotated) == 0
            options = get_tenant(session, "acme").large_file_config["storage_options"]
            assert SecretBox(new).decrypt(options["secret_access_key_enc"]) == "s3cr3t"
