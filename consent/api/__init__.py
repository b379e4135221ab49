"""The consent API (API.md): one module of thin views per endpoint group, and their URLs."""
