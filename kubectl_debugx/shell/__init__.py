"""Shell integration: completion, the cached command tree and help, the zipapp's housekeeping."""
