"""The ``fmwsss`` command line: one package for every user-facing command.

``main`` (the console script) dispatches to sub-command modules: ``data`` (sample fetchers), ``weights``
(registry, fetch, verify, tiny models), ``seed`` (one image through the fine chain, with the chain itself in
``single_image``). Nothing below ``fmwsss.cli`` imports it: it sits on top of every library layer.
"""
from fmwsss.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
