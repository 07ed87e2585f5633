"""HTTP only: authentication, rate limit, body limit, the error envelope, and the routes.

No SQL here: routes validate with ``crmdeals.deals`` and call ``crmdeals.storage.Store``.
"""
