"""Secret stores (environment, file, directory, encrypted beside the event log) and their sealing."""
