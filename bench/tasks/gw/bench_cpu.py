"""Burns CPU in pure Python (holding the GIL) for the --processes benchmark."""


async def task(payload, ctx):  # type: ignore[no-untyped-def]
    total = 0
    for i in range(int(payload["loops"])):
        total += i * i
    return None
