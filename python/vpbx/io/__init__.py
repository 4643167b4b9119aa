"""The only asyncio code of vpbx: transports, timers and network clients that feed the sans-IO
cores (DESIGN.md §3 rule 1)."""
