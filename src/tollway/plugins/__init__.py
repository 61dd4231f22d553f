"""The built-in plugins, by their Higress names."""

from __future__ import annotations

from tollway.plugin import Plugin, PluginConfig
from tollway.plugins.chatgpt_proxy import ChatgptProxy
from tollway.plugins.key_auth import KeyAuth
from tollway.plugins.request_block import RequestBlock

REGISTRY: dict[str, type[Plugin[PluginConfig]]] = {
    cls.name: cls  # type: ignore[misc]
    for cls in (KeyAuth, RequestBlock, ChatgptProxy)
}
