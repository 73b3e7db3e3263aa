"""The one jinja2 environment every renderer uses, so they all render by the same rules."""

from __future__ import annotations

from functools import cache

import jinja2


@cache
def environment() -> jinja2.Environment:
    # Config files, not HTML: no autoescaping; a missing variable is an error, never blank.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("anycast_ctl.render", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def template(name: str) -> jinja2.Template:
    return environment().get_template(name)
