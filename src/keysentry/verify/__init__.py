"""Verification: is a key live, within budget and isolated. `client` is the only module that
talks to the OpenAI API; the openai SDK is imported only here, when a check runs."""
