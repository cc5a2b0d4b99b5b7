"""Authentication (bearer tokens) and authorization (a small RBAC rule table).

Each token maps to a user with static rules; ServiceAccount tokens issued through
`serviceaccounts/NAME/token` additionally get the rules of the Roles/ClusterRoles bound to them by stored
RoleBindings/ClusterRoleBindings, so the recorded RBAC scenario (Role pod-reader bound to SA limited) can be
replayed literally. Forbidden messages are built exactly as the real authorizer phrases them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

# What every authenticated user may do (system:basic-user + system:discovery in a real cluster).
_PUBLIC_RESOURCES = {("create", "authorization.k8s.io", "selfsubjectaccessreviews"),
                     ("create", "authorization.k8s.io", "selfsubjectrulesreviews")}


@dataclass(frozen=True)
class Rule:
    verbs: frozenset[str]
    resources: frozenset[str]  # "pods", "pods/exec", "*"
    api_groups: frozenset[str] = frozenset({""})
    namespace: str | None = None  # None: every namespace and the cluster scope
    origin: str = ""  # the binding that grants it, as the RBAC authorizer names it ("" for static rules)

    def matches(self, verb: str, group: str, resource: str, namespace: str | None) -> bool:
        if self.namespace is not None and namespace != self.namespace:
            return False
        if "*" not in self.verbs and verb not in self.verbs:
            return False
        if "*" not in self.api_groups and group not in self.api_groups:
            return False
        return "*" in self.resources or resource in self.resources


@dataclass
class User:
    name: str
    groups: tuple[str, ...]
    rules: list[Rule] = field(default_factory=list)

    @property
    def is_admin(self) -> bool:
        return "system:masters" in self.groups


def rules_from_policy(policy_rules: Iterable[dict], namespace: str | None, origin: str = "") -> list[Rule]:
    """Turn Role/ClusterRole `.rules` into Rules (only resource rules; nonResourceURLs are ignored)."""
    out = []
    for r in policy_rules:
        if not r.get("resources"):
            continue
        out.append(
            Rule(
                verbs=frozenset(r.get("verbs") or ()),
                resources=frozenset(r.get("resources") or ()),
                api_groups=frozenset(r.get("apiGroups") or ("",)),
                namespace=namespace,
                origin=origin,
            )
        )
    return out


def binding_origin(binding: dict, subject: dict) -> str:
    """`RoleBinding "pod-reader/rec2-auth" of Role "pod-reader" to ServiceAccount "limited/rec2-auth"`: how the
    RBAC authorizer names what allowed a request (recording 22-ssar-limited-watch-pods; namespaced names are
    NAME/NAMESPACE there)."""
    meta = binding.get("metadata") or {}
    ref = binding.get("roleRef") or {}
    where = f'{meta.get("name")}/{meta["namespace"]}' if meta.get("namespace") else meta.get("name")
    kind = subject.get("kind")
    who = (f'{subject.get("name")}/{subject.get("namespace")}' if kind == "ServiceAccount"
           else subject.get("name"))
    return f'{binding.get("kind")} "{where}" of {ref.get("kind")} "{ref.get("name")}" to {kind} "{who}"'


class Authorizer:
    """Tokens -> users, and (user, verb, resource) -> allowed?

    `bindings` is a callable returning the rules granted to a user by stored RBAC objects; the API server
    wires it to its store so that Roles created through the API take effect.
    """

    def __init__(self) -> None:
        self._tokens: dict[str, User] = {}
        self.bindings: Callable[[User], list[Rule]] = lambda user: []
        self.admin_token = self.add_user(User("kubernetes-admin", ("system:masters", "system:authenticated")))
        # Like the recorded ServiceAccount 'limited' bound to Role pod-reader, but in every namespace so that
        # it works in the fresh namespace of each test.
        self.limited_token = self.add_user(
            User(
                "system:serviceaccount:default:limited",
                ("system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"),
                [Rule(frozenset({"get", "list", "watch"}), frozenset({"pods"}))],
            )
        )

    def add_user(self, user: User, token: str | None = None) -> str:
        token = token or secrets.token_urlsafe(32)
        self._tokens[token] = user
        return token

    def service_account_token(self, namespace: str, name: str) -> str:
        user = User(
            f"system:serviceaccount:{namespace}:{name}",
            ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
        )
        return self.add_user(user)

    def static_rules(self, name: str) -> list[Rule]:
        """The static rules of our user of that name (for a request impersonating it)."""
        return next((list(u.rules) for u in self._tokens.values() if u.name == name), [])

    def authenticate(self, authorization_header: str | None) -> User | None:
        if not authorization_header or not authorization_header.startswith("Bearer "):
            return None
        return self._tokens.get(authorization_header[len("Bearer "):].strip())

    def allowed(
        self, user: User, verb: str, group: str, resource: str, subresource: str = "",
        namespace: str | None = None,
    ) -> bool:
        return self.decide(user, verb, group, resource, subresource, namespace)[0]

    def decide(
        self, user: User, verb: str, group: str, resource: str, subresource: str = "",
        namespace: str | None = None,
    ) -> tuple[bool, str]:
        """(allowed, reason): the reason names the binding that allowed it, as a SelfSubjectAccessReview's
        status.reason does (`RBAC: allowed by RoleBinding ...`); none for system:masters, as recorded."""
        if user.is_admin:
            return True, ""
        if (verb, group, resource) in _PUBLIC_RESOURCES:
            return True, ""
        full = f"{resource}/{subresource}" if subresource else resource
        for rule in list(user.rules) + self.bindings(user):
            if rule.matches(verb, group, full, namespace):
                return True, f"RBAC: allowed by {rule.origin}" if rule.origin else ""
        return False, ""


def forbidden_message(
    user: User, verb: str, group: str, resource: str, subresource: str, namespace: str | None, name: str | None
) -> str:
    """`pods "nginx" is forbidden: User "U" cannot get resource "pods/exec" in API group "" in the namespace "rec"`."""
    qualified = resource if not group else f"{resource}.{group}"
    subject = f'{qualified} "{name}"' if name else qualified
    full = f"{resource}/{subresource}" if subresource else resource
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    return (
        f'{subject} is forbidden: User "{user.name}" cannot {verb} resource "{full}" '
        f'in API group "{group}" {scope}'
    )
