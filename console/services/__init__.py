"""Services: one function per mutating verb, shared by the TUI and the CLI.

Each service validates its input first (nothing is created on bad input), checks
:func:`console.services.guard.require_writable`, records one audit record
(:func:`console.audit.record`) and undoes what it created when a later step fails.
"""
