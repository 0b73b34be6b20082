"""core.echo: print `message` and return it."""

import json


def run(message=""):
    print(message if isinstance(message, str) else json.dumps(message))
    return message
