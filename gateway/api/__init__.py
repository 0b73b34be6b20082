"""One blueprint per resource; every module exposing `bp` is registered by create_app."""
