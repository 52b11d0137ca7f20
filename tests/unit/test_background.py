"""The shared background loop: passes repeat while busy, wait otherwise, survive a raising pass."""

import asyncio

import pytest

from flows.background import BackgroundLoop


async def test_a_raising_pass_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    passes: list[int] = []

    async def one_pass() -> bool:
        passes.append(len(passes))
        if len(passes) == 1:
            raise RuntimeError("database away")
        return len(passes) < 4  # busy twice more, then idle

    loop = BackgroundLoop("test-loop", one_pass, poll_s=60)
    loop.start()
    loop.wake()  # the failed pass waits; a wake-up runs the next one at once
    for _ in range(200):
        if len(passes) >= 4:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    await loop.stop()
    assert passes == [0, 1, 2, 3]  # idle after the fourth: waiting for the 60 s poll
    assert "test-loop: pass failed" in caplog.text


async def test_stop_before_start_and_twice_is_harmless() -> None:
    async def one_pass() -> bool:
        return False

    loop = BackgroundLoop("idle", one_pass, poll_s=60)
    await loop.stop()
    loop.start()
    await loop.stop()
    await loop.stop()
