"""A valid config, which the config tests break one place at a time."""

from __future__ import annotations

VALID = """
server: {host: 127.0.0.1, port: 0, max_body_bytes: 1000}
storage: {database: "sqlite:///./tollway.db", state: memory}
providers:
  - id: openai
    type: openai
    apiTokens: ["${TW_TEST_TOKEN:-sk-default}"]
    baseUrl: http://127.0.0.1:9/v1
    modelMapping: {"gpt-3.5*": gpt-4o-mini, "~claude-(.*)": "x-$1", "*": ""}
routes:
  - {name: chat, path_prefix: /v1/, provider: openai}
plugins:
  - name: key-auth
    defaultConfig:
      keys: [authorization]
      consumers: [{name: alice, credential: ck-alice}]
    matchRules:
      - ingress: [chat]
        config: {allow: [alice]}
  - name: request-block
    defaultConfig: {block_urls: [password]}
"""
