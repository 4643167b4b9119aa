"""The only asyncio code of vpbx (DESIGN.md §3.1): transports, timers,
clients, and the bridge that brings media-engine events into the loop."""
