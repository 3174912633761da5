"""The optimizer's portal pages: overview, requests (the ledger), cache, optimizer settings."""
