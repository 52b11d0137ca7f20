"""The SDK's public names exist, and both clients expose the same resources and methods."""

import inspect

import offerhub_client
import pytest
from offerhub_client import AsyncOfferHub, OfferHub, errors, models, resources


@pytest.mark.parametrize("module", [offerhub_client, errors, models, resources])
def test_every_exported_name_exists_and_the_list_is_sorted(module: object) -> None:
    exported = list(module.__all__)  # type: ignore[attr-defined]
    assert [name for name in exported if not hasattr(module, name)] == []
    assert len(set(exported)) == len(exported)


async def test_both_clients_expose_the_same_methods_with_the_same_signatures() -> None:
    blocking = OfferHub("http://offerhub.test/api/v1", "key")
    asynchronous = AsyncOfferHub("http://offerhub.test/api/v1", "key")
    groups = [name for name, value in vars(blocking).items() if name != "http"]
    assert groups == [name for name in vars(asynchronous) if name != "http"]
    assert len(groups) == 16
    for group in groups:
        sync_resource, async_resource = getattr(blocking, group), getattr(asynchronous, group)
        names = [name for name in dir(type(sync_resource)) if not name.startswith("_")]
        assert names, group
        for name in names:
            sync_method, async_method = getattr(sync_resource, name), getattr(async_resource, name)
            sync_parameters = inspect.signature(sync_method).parameters
            assert sync_parameters == inspect.signature(async_method).parameters, name
            assert sync_method.__doc__, f"{group}.{name} has no docstring"
    blocking.close()
    await asynchronous.aclose()
