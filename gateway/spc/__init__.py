"""Pure SPC computation: no I/O, no asyncio, no logging of its own."""
