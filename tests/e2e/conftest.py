"""Fixtures shared by the end-to-end tests of the commands (the cluster fixtures are in tests/conftest.py)."""

import pytest

from .helpers import add_traffic_container


@pytest.fixture
def web(e2e, nginx_pod):
    """A running nginx pod plus a container of the test's own to make requests from inside the pod."""
    namespace, pod = nginx_pod
    traffic = add_traffic_container(e2e, namespace, pod)
    return namespace, pod, traffic
