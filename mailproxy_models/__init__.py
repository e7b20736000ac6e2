"""mailproxy's domain layer: tables and the typed operations on them.

Everything that changes state is a plain function taking a SQLAlchemy ``Session``; the API,
the Celery tasks and the CLI call these and own the transaction.
"""
