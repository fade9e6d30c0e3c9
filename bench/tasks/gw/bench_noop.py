"""Does nothing: the drain benchmark measures the worker, not the handler."""


async def task(payload, ctx):  # type: ignore[no-untyped-def]
    return None
