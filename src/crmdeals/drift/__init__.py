"""The drift report (CRM section 4): what the CRM forgot to send, the users and contacts
that its deals and contacts name but that the account lacks. ``schemas`` holds its types;
the report is computed by ``crmdeals.storage.drift`` on each request."""
