"""Google's Gemini generateContent API: its codec (``generate_content``) and each
direction in a module of its own."""
