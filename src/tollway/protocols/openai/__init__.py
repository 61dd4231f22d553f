"""OpenAI's wire format: error and list shapes (``wire``) and the chat-completions codec
(``chat``), whose shapes are the pivot every translation crosses."""
