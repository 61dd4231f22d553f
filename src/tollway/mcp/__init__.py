"""The MCP gateway (SPEC §12): routes with ``mcp_server`` relay the Model Context
Protocol's Streamable HTTP transport to a remote server, after the route's plugins ran.

    jsonrpc   what a JSON-RPC message says (method, id, tool) and the errors we answer
    servers   the configured servers as the relay uses them (credentials ready to add)
    tools     a consumer's ``allow_tools``: which tools it may list and call
    relay     one HTTP request to the server and its answer, JSON or a stream
    rest_tools, openapi, rest_server
              ``type: rest`` servers: REST calls as tools, served by the gateway
              itself on the official MCP SDK, reached by the relay in process
"""
