"""The ``tympan`` command line: a thin face over ``tympan.track`` and ``tympan.store``.

``app.py`` builds the command tree and turns every ``TympanError`` into one line on stderr;
one module per command group parses input, calls one feature function and renders with
``render.py``. Nothing is imported here, so ``python -m tympan.cli.app`` stays warning-free.
"""
