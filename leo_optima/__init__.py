"""LEO Optima: a self-hosted, multi-tenant, OpenAI-compatible LLM gateway."""
