"""The HTML report of one dataset's run: summary, per-class IoU, confusion matrices, training curves, a
per-image gallery and the table of every variant in the store (``fmwsss report DATASET``).

``collect`` reads what is on disk, ``thumbs``/``svg``/``html`` draw and render (pure), ``gallery`` keeps
the thumbnail cache, ``build`` puts it together. The layer sits above ``pipeline`` (it reads the plan's
current keys) and below ``cli``.
"""
