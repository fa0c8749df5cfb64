"""The customers table: saved, updated field by field, found by phone, listed for read-ahead."""

from __future__ import annotations

from realtime_voice.storage.queries import CallStore
from tests.integration import db_fixtures

database_url = db_fixtures.database_url
migrated_url = db_fixtures.migrated_url


async def test_save_update_find_and_list(migrated_url: str) -> None:
    store = CallStore(migrated_url)
    try:
        created = store.save_customer_sync(
            "+15555550123", name="John Smith", external_id="crm-42",
            details={"vehicle": "2019 Honda Civic"},
        )
        store.save_customer_sync("+15555550123", notes="prefers mornings")
        store.save_customer_sync("+15555550999", name="Ana Diaz")

        found = await store.find_customer("+15555550123")
        assert found is not None
        assert (found.name, found.notes, found.external_id, found.details) == (
            "John Smith", "prefers mornings", "crm-42", {"vehicle": "2019 Honda Civic"})
        assert found.updated_at >= created.created_at
        assert found.created_at.tzinfo is not None
        assert await store.find_customer("+15555550000") is None
        assert [c.phone for c in store.list_customers_sync()] == ["+15555550123", "+15555550999"]
    finally:
        store.close()
