"""Delivery reports go through the same address guard as attachment fetches: a tenant's
client_base_url on a loopback or private address gets nothing unless the operator allowed
that tenant that network. Only loopback is ever connected to; other private ranges are
checked as decisions."""

from __future__ import annotations

import ipaddress
import os

import pytest

from mailproxy_models.db import session_scope
from mailproxy_models.instance import open_instance
from mailproxy_models.migrate import upgrade
from mailproxy_models.reports import TenantSync
from mailproxy_models.settings import Settings
from mailproxy_models.tenants import create_tenant
from mailproxy_workers.outbound_guard import (
    ForbiddenAddress,
    checked_addresses,
    tenant_private_networks,
)
from mailproxy_workers.report_sync import sync_tenant
from mailproxy_workers.runtime import WorkerRuntime
from tests.support.client_app import ClientApp


@pytest.fixture
def client_on_127_0_0_2():
    app = ClientApp(host="127.0.0.2").start()
    yield app
    app.stop()


def _runtime(tmp_path, app: ClientApp, **settings) -> WorkerRuntime:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    instance = open_instance(
        Settings(data_dir=tmp_path, database_url=url, report_timeout=5.0, **settings)
    )
    with session_scope(instance.sessions) as session:
        create_tenant(
            session,
            instance.box,
            {
                "id": "acme",
                "client_base_url": app.url,
                "client_auth": {"method": "bearer", "token": "tenant-secret"},
            },
        )
    return WorkerRuntime(instance, None, "test", os.getpid(), None)  # type: ignore[arg-type]


def test_a_report_url_on_a_loopback_address_gets_no_post_and_the_reports_wait(
    tmp_path, client_on_127_0_0_2
):
    runtime = _runtime(tmp_path, client_on_127_0_0_2)
    result = sync_tenant(runtime, "acme")
    assert result.called and result.acknowledged == 0
    assert client_on_127_0_0_2.calls == []
    with session_scope(runtime.instance.sessions) as session:
        state = session.get(TenantSync, "acme")
        assert state is not None and state.failures == 1
        assert "127.0.0.2" in state.last_error
        assert "not allowed for this tenant" in state.last_error
    runtime.instance.engine.dispose()


def test_a_tenant_the_operator_allowed_reaches_its_client_on_that_network(
    tmp_path, client_on_127_0_0_2
):
    runtime = _runtime(
        tmp_path, client_on_127_0_0_2, private_networks_allowed=["acme=127.0.0.2/32"]
    )
    assert sync_tenant(runtime, "acme").called
    [call] = client_on_127_0_0_2.calls
    assert call["auth"] == "Bearer tenant-secret"
    runtime.instance.engine.dispose()


def test_the_allow_list_names_tenants_networks_or_every_tenant():
    entries = ["acme", "shop=10.1.0.0/16", "*=127.0.0.1/32"]
    assert len(tenant_private_networks("acme", entries)) == 2  # every address, v4 and v6
    assert tenant_private_networks("shop", entries) == (
        ipaddress.ip_network("10.1.0.0/16"),
        ipaddress.ip_network("127.0.0.1/32"),
    )
    assert tenant_private_networks("other", entries) == (ipaddress.ip_network("127.0.0.1/32"),)


@pytest.mark.parametrize("address", ["10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254"])
def test_a_private_address_is_refused_before_any_connection(address):
    with pytest.raises(ForbiddenAddress, match="not allowed for this tenant"):
        checked_addresses(address, 80, ())
    allowed = (ipaddress.ip_network(address),)
    assert checked_addresses(address, 80, allowed) == [address]  # resolved, not connected


def test_a_name_is_refused_when_any_address_it_resolves_to_is_forbidden():
    with pytest.raises(ForbiddenAddress, match="localhost"):
        checked_addresses("localhost", 80, ())
