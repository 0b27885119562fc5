"""The web console: a single-page app built from ``console/`` (Vite) into ``static/``, served at
``/console`` by :class:`orchestrator.console.serve.ConsoleApi`. Node.js is needed only to build it."""
