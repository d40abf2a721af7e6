"""Browser tests: the running app driven in headless Chromium (pytest -m e2e)."""
