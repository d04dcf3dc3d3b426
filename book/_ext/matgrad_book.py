"""Small Sphinx fixes for the matgrad book.

sphinx-thebe adds its configuration script once per ``env-before-read-docs`` event,
which a Jupyter Book build emits more than once (at two priorities), so every
page declared ``const THEBE_JS_URL`` twice and the browser reported a SyntaxError. Here each page's
scripts are deduplicated just before it is written.
"""


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen = set()
    unique = []
    for script in scripts:
        # Same file (or inline body: filename None or "") and attributes: a duplicate.
        key = (str(getattr(script, "filename", script) or ""), tuple(sorted(getattr(script, "attributes", {}).items())))
        if key in seen:
            continue
        seen.add(key)
        unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
