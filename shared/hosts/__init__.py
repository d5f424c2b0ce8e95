"""Registered self-hosted hosts (GitHub Enterprise Server, self-managed GitLab), each with its
own OAuth client (promise 9): :mod:`shared.hosts.registry` stores and finds them,
:mod:`shared.hosts.clients` picks the OAuth client a flow, refresh or revocation uses."""
