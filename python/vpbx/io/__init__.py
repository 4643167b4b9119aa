"""The only asyncio code of vpbx (DESIGN.md §3 rule 1): transports, timers, network
clients that feed the sans-IO cores, and the bridge that brings media-engine events
into the loop."""
