"""Webhooks: the platform's calls to the CRM (settings, deliveries, their triggers)."""
