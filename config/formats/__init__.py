"""Date formats where Django's defaults do not suit the reader (FORMAT_MODULE_PATH)."""
