"""Server-rendered web pages under ``/ui``: Jinja2 templates over the same services the JSON API uses.

Pages only read (GET); every action on a page is a script calling the JSON API with the session's CSRF
token, so each rule and each change exists once. ``WEB_ROUTERS`` are included by ``api.main``, which also
serves ``static/`` at ``/ui/static``; who may open which page is ``api.access.PAGE_POLICY``.
"""

from fastapi import APIRouter

from api.web import enterprise, market, officer, shell

WEB_ROUTERS: tuple[APIRouter, ...] = (shell.router, officer.router, enterprise.router, market.router)
