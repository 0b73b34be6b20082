"""examples.fetch: a stand-in for a real API call."""


def run(environment="staging"):
    hosts = {"staging": ["web-1", "web-2"], "prod": ["web-1", "web-2", "web-3"]}
    return {"api_key": f"key-{environment}", "hosts": hosts.get(environment, [])}
