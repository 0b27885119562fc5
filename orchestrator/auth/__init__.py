"""Who is asking: principals, authentication (API keys, tokens, sessions) and authorization."""
