"""hello.greet: print a greeting and return it."""


def run(name, greeting="Hello"):
    message = f"{greeting}, {name}!"
    print(message)
    return {"message": message}
