"""The HTTP edge: Litestar app, routes, settings and the ``offerhub`` command line.

Nothing imports this package; it imports everything below it.
"""
