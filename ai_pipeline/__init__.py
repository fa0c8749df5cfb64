"""The conversation brain: responders that turn a caller's turn into what the bot says and does."""
