"""Settings package: base (shared), local (default, no environment needed), production, test."""
