"""policy-engine: a data-driven policy engine for Amazon API Gateway Lambda authorizers.

The top-level package imports nothing heavy; import what you need from its modules:
``policy_engine.engine.Authorizer``, ``policy_engine.settings.Settings``,
``policy_engine.errors``. The Lambda entry point is ``handler.app.lambda_handler``.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
