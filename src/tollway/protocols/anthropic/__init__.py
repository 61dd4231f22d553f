"""Anthropic's Messages API: its codec (``messages``) and each direction in a module of
its own."""
