"""The Kubernetes API: the only package that uses the kubernetes client; plain dicts out."""
